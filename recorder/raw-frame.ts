/**
 * The raw SSH recording format ("pamraw", `ID.raw`): channels without a pty are recorded as
 * the exact bytes carried, per direction, with timestamps. Pure codec: no files, no clocks.
 *
 * ```
 * file    = magic header frame*
 * magic   = "PAMRAW1\n"                      8 bytes
 * header  = JSON object, UTF-8, then "\n"   { version: 1, timestamp (ms since the epoch), title, width, height }
 * frame   = type u8 | stream u8 | channel u16 | time u48 | length u32 | payload[length]   (big-endian)
 *   time    milliseconds since the header's timestamp (u48: no wrap for 8900 years)
 *   type 1  DATA      payload = the bytes carried; stream 0 stdin (client → target), 1 stdout, 2 stderr
 *   type 2  MARKER    payload = UTF-8 label (exec command, exit status, denial, kill, …)
 *   type 3  CHANNEL   payload = UTF-8 JSON { kind, label?, pty?, stdin? }: a channel starts (its number is `channel`;
 *                     stdin "judged": the stdin gate judged its stdin line by line)
 *   type 4  RESIZE    payload = cols u16 | rows u16
 *   type 5  TRANSFER  payload = UTF-8 JSON file record { path, direction, size, sha256, via, stored? }
 * ```
 * 14 bytes of frame header per batch of up to 64 KiB: 0.02% on bulk data. A frame is written
 * whole or not at all into the page cache; a crash can only cut the last one short, which the
 * reader reports as `truncated` and stops at (everything before it is intact).
 */

export const RAW_MAGIC = Buffer.from('PAMRAW1\n', 'latin1');
export const FRAME_HEADER = 14;
/** Longest payload a reader accepts: a writer never makes frames near this (it batches 64 KiB). */
export const MAX_PAYLOAD = 16 * 1024 * 1024;
/** Longest magic + header line a reader accepts. */
export const MAX_HEADER = 64 * 1024;

export const enum FrameType {
  Data = 1,
  Marker = 2,
  Channel = 3,
  Resize = 4,
  Transfer = 5,
}

export type RawStream = 'stdin' | 'stdout' | 'stderr';
export const STREAMS: readonly RawStream[] = ['stdin', 'stdout', 'stderr'];
export const streamCode = (s: RawStream): number => STREAMS.indexOf(s);

export interface RawHeader {
  version: 1;
  /** ms since the epoch; frame times count from it. */
  timestamp: number;
  title: string;
  width: number;
  height: number;
}

export interface RawFrame {
  type: FrameType;
  stream: number;
  channel: number;
  /** ms since the header's timestamp. */
  t: number;
  payload: Buffer;
  /** Byte offset of the frame in the file. */
  offset: number;
}

export class RawFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RawFormatError';
  }
}

export function encodeHeader(h: RawHeader): Buffer {
  return Buffer.concat([RAW_MAGIC, Buffer.from(JSON.stringify(h) + '\n', 'utf8')]);
}

/** Writes a frame header into `out` at `at` (14 bytes). */
export function writeFrameHeader(out: Buffer, at: number, type: FrameType, stream: number, channel: number, tMs: number, length: number): void {
  out[at] = type;
  out[at + 1] = stream;
  out.writeUInt16BE(channel & 0xffff, at + 2);
  out.writeUIntBE(Math.max(0, Math.min(2 ** 48 - 1, Math.floor(tMs))), at + 4, 6);
  out.writeUInt32BE(length, at + 10);
}

export function encodeFrame(type: FrameType, stream: number, channel: number, tMs: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  writeFrameHeader(out, 0, type, stream, channel, tMs, payload.length);
  payload.copy(out, FRAME_HEADER);
  return out;
}

/**
 * Streaming parser: feed chunks of a file from its start, get the header once and frames as
 * they complete; leftover bytes are carried between chunks. A malformed header or frame throws
 * RawFormatError; a frame cut short at the end is left in `pending` (see `truncated`).
 */
export class RawFrameParser {
  header: RawHeader | undefined;
  private buf: Buffer = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private base = 0;

  /** Bytes held that do not make a whole frame yet: at the end of a file, a torn last frame. */
  get pending(): number {
    return this.buf.length;
  }

  /** Offset just past the last whole frame. */
  get consumed(): number {
    return this.base;
  }

  /** Drops the bytes held of a frame not yet whole; returns how many (the caller rereads them). */
  dropPending(): number {
    const n = this.buf.length;
    this.buf = Buffer.alloc(0);
    return n;
  }

  push(chunk: Buffer, out: RawFrame[]): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let at = 0;
    if (!this.header) {
      const h = decodeFileHeader(this.buf);
      if (!h) return;
      this.header = h.header;
      at = h.length;
    }
    while (this.buf.length - at >= FRAME_HEADER) {
      const type = this.buf[at]!;
      if (type < FrameType.Data || type > FrameType.Transfer) throw new RawFormatError(`unknown frame type ${type} at byte ${this.base + at}`);
      const len = this.buf.readUInt32BE(at + 10);
      if (len > MAX_PAYLOAD) throw new RawFormatError(`frame of ${len} bytes at byte ${this.base + at} exceeds the limit`);
      if (this.buf.length - at < FRAME_HEADER + len) break;
      out.push({
        type, stream: this.buf[at + 1]!, channel: this.buf.readUInt16BE(at + 2), t: this.buf.readUIntBE(at + 4, 6),
        payload: this.buf.subarray(at + FRAME_HEADER, at + FRAME_HEADER + len), offset: this.base + at,
      });
      at += FRAME_HEADER + len;
    }
    this.base += at;
    this.buf = at === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(at);
  }
}

/**
 * The magic and header line at the start of `buf` (a file's first bytes): the header and its
 * length in bytes, or undefined while its newline has not come. Throws RawFormatError.
 */
export function decodeFileHeader(buf: Buffer): { header: RawHeader; length: number } | undefined {
  if (buf.length < RAW_MAGIC.length) return undefined;
  if (!buf.subarray(0, RAW_MAGIC.length).equals(RAW_MAGIC)) throw new RawFormatError('not a raw recording (bad magic)');
  const nl = buf.indexOf(0x0a, RAW_MAGIC.length);
  if (nl < 0) {
    if (buf.length > MAX_HEADER) throw new RawFormatError('raw recording header too long');
    return undefined;
  }
  return { header: parseHeader(buf.subarray(RAW_MAGIC.length, nl)), length: nl + 1 };
}

function parseHeader(line: Buffer): RawHeader {
  let h: unknown;
  try {
    h = JSON.parse(line.toString('utf8'));
  } catch {
    throw new RawFormatError('raw recording header is not JSON');
  }
  const o = h as Partial<RawHeader>;
  if (!o || typeof o !== 'object' || o.version !== 1 || typeof o.timestamp !== 'number') throw new RawFormatError('raw recording header lacks version 1 and timestamp');
  return { version: 1, timestamp: o.timestamp, title: typeof o.title === 'string' ? o.title : '', width: Number(o.width) || 80, height: Number(o.height) || 24 };
}

/** A CHANNEL frame's JSON; a foreign shape gives a generic channel. */
export function channelInfo(payload: Buffer): { kind: string; label?: string; pty?: boolean } {
  try {
    const o = JSON.parse(payload.toString('utf8')) as { kind?: unknown; label?: unknown; pty?: unknown };
    return { kind: typeof o.kind === 'string' ? o.kind : 'channel', ...(typeof o.label === 'string' ? { label: o.label } : {}), ...(o.pty === true ? { pty: true } : {}) };
  } catch {
    return { kind: 'channel' };
  }
}
