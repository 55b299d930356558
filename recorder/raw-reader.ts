import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { isDenial, noteGap, type CastEvent, type CastIndex } from './cast-reader.js';
import { TypedLines } from './typed-line.js';
import { NO_CACHE, type ReaderCacheLike } from './reader-cache.js';
import { channelInfo, FrameType, RawFrameParser, STREAMS, type RawFrame, type RawHeader, type RawStream } from './raw-frame.js';

/**
 * Readers of the raw SSH format (raw-frame.ts): frames, one stream's exact bytes (the raw
 * export), a byte-level summary (size, SHA-256, hex head per stream) and the recording rendered
 * as asciicast events, which is what the text and asciicast exports, the player and the search
 * index use, so they read raw recordings the way they read `.cast` files.
 */

/** Frames of a raw recording in batches (one per read chunk), and at the end whether its last frame was torn. */
export async function* rawFrames(path: string): AsyncGenerator<{ header: RawHeader; frames: RawFrame[] }, { truncated: boolean; bytes: number }> {
  const parser = new RawFrameParser();
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    const frames: RawFrame[] = [];
    parser.push(chunk, frames);
    if (frames.length && parser.header) yield { header: parser.header, frames };
  }
  return { truncated: parser.pending > 0, bytes };
}

/**
 * The bytes of one stream exactly as carried: `stdout` is what the client received on its
 * standard output. All channels in order unless `channel` is given (a connection usually has one).
 */
export async function* rawStreamBytes(path: string, stream: RawStream, channel?: number): AsyncGenerator<Buffer> {
  const code = STREAMS.indexOf(stream);
  for await (const { frames } of rawFrames(path)) {
    for (const f of frames) {
      if (f.type === FrameType.Data && f.stream === code && (channel === undefined || f.channel === channel)) yield f.payload;
    }
  }
}

export interface StreamSummary {
  bytes: number;
  sha256: string;
  /** First HEAD_BYTES bytes, hex. */
  head: string;
  /** Not valid UTF-8 text (or has NUL bytes): shown as bytes, not replayed as terminal output. */
  binary: boolean;
}

export interface RawSummary {
  title: string;
  width: number;
  height: number;
  timestamp: number;
  duration: number;
  channels: { channel: number; kind: string; label?: string; pty?: boolean; streams: Partial<Record<RawStream, StreamSummary>> }[];
  markers: { t: number; label: string }[];
  transfers: Record<string, unknown>[];
  /** The last frame was cut short (the proxy was killed mid-write); everything before it is whole. */
  truncated: boolean;
  bytes: number;
}

const HEAD_BYTES = 256;

/** The byte-level view of a raw recording, kept in `cache` until the file changes. */
export function rawSummary(path: string, cache: ReaderCacheLike = NO_CACHE): Promise<RawSummary> {
  return cache.get(`raw:${path}`, path, async () => {
    const s: RawSummary = { title: '', width: 80, height: 24, timestamp: 0, duration: 0, channels: [], markers: [], transfers: [], truncated: false, bytes: 0 };
    const acc = new Map<string, { hash: Hash; bytes: number; head: Buffer[]; headLen: number; text: TextClassifier }>();
    const byNumber = new Map<number, RawSummary['channels'][number]>();
    const gen = rawFrames(path);
    for (;;) {
      const r = await gen.next();
      if (r.done) {
        s.truncated = r.value.truncated;
        s.bytes = r.value.bytes;
        break;
      }
      const h = r.value.header;
      Object.assign(s, { title: h.title, width: h.width, height: h.height, timestamp: h.timestamp });
      for (const f of r.value.frames) {
        s.duration = f.t / 1000;
        if (f.type === FrameType.Channel) {
          const c = { channel: f.channel, ...channelInfo(f.payload), streams: {} };
          byNumber.set(f.channel, c);
          s.channels.push(c);
        } else if (f.type === FrameType.Marker) s.markers.push({ t: f.t / 1000, label: f.payload.toString('utf8') });
        else if (f.type === FrameType.Transfer) s.transfers.push(parseJson(f.payload));
        else if (f.type === FrameType.Data) {
          const key = `${f.channel}:${f.stream}`;
          let a = acc.get(key);
          if (!a) acc.set(key, (a = { hash: createHash('sha256'), bytes: 0, head: [], headLen: 0, text: new TextClassifier() }));
          a.hash.update(f.payload);
          a.bytes += f.payload.length;
          a.text.feed(f.payload);
          if (a.headLen < HEAD_BYTES) {
            const part = f.payload.subarray(0, HEAD_BYTES - a.headLen);
            a.head.push(part);
            a.headLen += part.length;
          }
        }
      }
    }
    for (const [key, a] of acc) {
      const [ch, st] = key.split(':').map(Number) as [number, number];
      let c = byNumber.get(ch);
      if (!c) byNumber.set(ch, (c = { channel: ch, kind: 'channel', streams: {} })), s.channels.push(c);
      c.streams[STREAMS[st] ?? 'stdout'] = { bytes: a.bytes, sha256: a.hash.digest('hex'), head: Buffer.concat(a.head).toString('hex'), binary: a.text.binary };
    }
    return s;
  });
}

/** Tells text from binary as bytes arrive: NUL bytes or invalid UTF-8 (a sequence split across chunks is fine). */
export class TextClassifier {
  binary = false;
  private readonly dec = new TextDecoder('utf-8', { fatal: true });
  /** The decoder took text and its last byte was ASCII: it holds no unfinished character, and a BOM can no longer come first. */
  private settled = false;

  /** Returns the chunk's text while the stream is text; undefined once it is binary. */
  feed(chunk: Buffer): string | undefined {
    if (this.binary) return undefined;
    if (chunk.indexOf(0) >= 0) {
      this.binary = true;
      return undefined;
    }
    try {
      const s = this.dec.decode(chunk, { stream: true });
      if (chunk.length) this.settled = chunk[chunk.length - 1]! < 0x80;
      return s;
    } catch {
      this.binary = true;
      return undefined;
    }
  }

  /**
   * True when a chunk of ASCII bytes would decode to those bytes as Latin-1 and leave the stream
   * as it was, so a reader may read it without calling feed (the index: ascii-text.ts). Not
   * before the first text (a leading BOM is dropped there) nor after a chunk that ended inside a
   * character.
   */
  get settledText(): boolean {
    return this.settled && !this.binary;
  }
}

/**
 * The recording as asciicast v2 events (seconds, type, data): stdout and stderr as `o`, stdin as
 * `i`, markers and file transfers as `m`, resizes as `r`. A stream that turns out binary is shown
 * once as a note pointing at the byte view and the raw export, never as terminal garbage.
 */
export async function* rawCastEvents(path: string, onHeader?: (h: RawHeader) => void): AsyncGenerator<CastEvent> {
  const r = new RawCastRenderer();
  let told = false;
  for await (const { header, frames } of rawFrames(path)) {
    if (!told) {
      told = true;
      onHeader?.(header);
    }
    for (const f of frames) {
      const e = r.frame(f);
      if (e) yield e;
    }
  }
}

/**
 * Renders frames as asciicast events one by one (the state: which streams turned out binary,
 * which channels have a pty). Output of a channel without a pty has bare `\n` line ends, which a
 * terminal shows as a staircase; they are shown as `\r\n`, as the client's terminal did (its
 * own tty added the CR). Only the rendering changes: the raw file keeps the bytes as sent.
 */
export class RawCastRenderer {
  private readonly text = new Map<string, TextClassifier>();
  private readonly pty = new Set<number>();
  /** Streams whose last rendered chunk ended in `\r` (a CRLF split across frames). */
  private readonly endsInCr = new Set<string>();

  frame(f: RawFrame): CastEvent | undefined {
    const t = f.t / 1000;
    if (f.type === FrameType.Channel) {
      if (channelInfo(f.payload).pty) this.pty.add(f.channel);
      return undefined;
    }
    if (f.type === FrameType.Marker) return [t, 'm', f.payload.toString('utf8')];
    if (f.type === FrameType.Transfer) return [t, 'm', transferLabel(parseJson(f.payload))];
    if (f.type === FrameType.Resize && f.payload.length >= 4) return [t, 'r', `${f.payload.readUInt16BE(0)}x${f.payload.readUInt16BE(2)}`];
    if (f.type !== FrameType.Data) return undefined;
    const key = `${f.channel}:${f.stream}`;
    let c = this.text.get(key);
    if (!c) this.text.set(key, (c = new TextClassifier()));
    const was = c.binary;
    const s = c.feed(f.payload);
    const name = STREAMS[f.stream] ?? 'stdout';
    if (s !== undefined) return s ? [t, f.stream === 0 ? 'i' : 'o', f.stream === 0 ? s : this.lineEnds(key, f.channel, s)] : undefined;
    if (was) return undefined;
    const note = `binary ${name} on channel ${f.channel}: see the byte view, or pam recordings export ID --format raw --stream ${name}`;
    return f.stream === 0 ? [t, 'm', note] : [t, 'o', `\r\n[pam: ${note}]\r\n`];
  }

  private lineEnds(key: string, channel: number, s: string): string {
    if (this.pty.has(channel)) return s;
    const out = (this.endsInCr.has(key) && s.startsWith('\n') ? '\n' + s.slice(1).replace(/(?<!\r)\n/g, '\r\n') : s.replace(/(?<!\r)\n/g, '\r\n'));
    if (s.endsWith('\r')) this.endsInCr.add(key);
    else this.endsInCr.delete(key);
    return out;
  }
}

/** The asciicast header line a raw recording renders with. */
export function rawCastHeader(h: RawHeader | undefined): string {
  return castHeader(h);
}

/** The recording rendered as an asciicast v2 file, line by line (header first). */
export async function* rawAsCast(path: string): AsyncGenerator<string> {
  let header: RawHeader | undefined;
  const events = rawCastEvents(path, (h) => (header = h));
  let first = true;
  for await (const e of events) {
    if (first) {
      first = false;
      yield castHeader(header) + '\n';
    }
    yield JSON.stringify(e) + '\n';
  }
  if (first) yield castHeader(header) + '\n';
}

function castHeader(h: RawHeader | undefined): string {
  return JSON.stringify({ version: 2, width: h?.width ?? 80, height: h?.height ?? 24, timestamp: Math.floor((h?.timestamp ?? 0) / 1000), env: {}, title: h?.title ?? '' });
}

export function transferLabel(r: Record<string, unknown>): string {
  const size = typeof r.size === 'number' ? `${r.size} bytes` : 'size unknown';
  return `file ${String(r.direction ?? 'transfer')} ${String(r.path ?? '?')} (${size}${typeof r.sha256 === 'string' ? `, sha256 ${r.sha256}` : typeof r.why === 'string' ? `, no sha256: ${r.why}` : ''}) via ${String(r.via ?? 'ssh')}`;
}

function parseJson(b: Buffer): Record<string, unknown> {
  try {
    const o = JSON.parse(b.toString('utf8')) as unknown;
    return o && typeof o === 'object' ? (o as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The player's index (cast-reader.ts CastIndex) of a raw recording from its rendered events:
 * markers, typed lines of no-pty shells (from stdin), denials, and checkpoints every 256 KiB of
 * the rendered file, so a long one is loaded in windows (rawCastWindow) like a long `.cast`.
 */
export function rawCastIndex(path: string, cache: ReaderCacheLike = NO_CACHE): Promise<CastIndex> {
  return cache.get(`rawcast:${path}`, path, async () => {
    const idx: CastIndex = { width: 80, height: 24, duration: 0, markers: [], typed: [], denials: 0, events: 0, checkpoints: [], gaps: [], bytes: 0 };
    const typed = new TypedLines();
    let nextCheckpoint = 0;
    for await (const e of rawCastEvents(path, (h) => Object.assign(idx, { width: h.width, height: h.height }))) {
      idx.events++;
      noteGap(idx, idx.duration, e[0]);
      idx.duration = e[0];
      // Offsets and size are of the rendered file the player loads (not the raw file's).
      if (idx.bytes >= nextCheckpoint) {
        idx.checkpoints.push({ t: e[0], offset: idx.bytes });
        nextCheckpoint = idx.bytes + 256 * 1024;
      }
      idx.bytes += JSON.stringify(e).length + 1;
      if (e[1] === 'm') {
        idx.markers.push({ t: e[0], label: e[2] });
        if (isDenial(e[2])) idx.denials++;
      } else if (e[1] === 'i') typed.feed(e[0], e[2], (lt, l) => { if (idx.typed.length < 20_000) idx.typed.push({ t: lt, line: l }); });
    }
    return idx;
  });
}

/** Output kept ahead of a window so the screen is rebuilt at its start (as cast-reader's castWindow). */
const KEYFRAME_CHARS = 64 * 1024;

/**
 * A window [from, from+span] of the rendered recording as a standalone asciicast: header, the
 * last size before it, one output event replaying the last KEYFRAME_CHARS of output before it,
 * then the window's events shifted to start at 0. Renders from the start of the file (a raw
 * recording has no line offsets to seek by).
 */
export async function rawCastWindow(path: string, from: number, span: number): Promise<string> {
  let header: RawHeader | undefined;
  let keyframe = '';
  let size: string | undefined;
  const out: string[] = [];
  for await (const e of rawCastEvents(path, (h) => (header = h))) {
    if (e[0] < from) {
      if (e[1] === 'o') keyframe = (keyframe.length + e[2].length > KEYFRAME_CHARS ? (keyframe + e[2]).slice(-KEYFRAME_CHARS) : keyframe + e[2]);
      else if (e[1] === 'r') size = e[2];
      continue;
    }
    if (e[0] > from + span) break;
    out.push(JSON.stringify([Math.max(0.001, Math.round((e[0] - from) * 1e6) / 1e6), e[1], e[2]]));
  }
  if (!header) return '';
  const lines = [castHeader(header)];
  if (size) lines.push(JSON.stringify([0, 'r', size]));
  if (keyframe) {
    const nl = keyframe.length >= KEYFRAME_CHARS ? keyframe.indexOf('\n') : -1;
    lines.push(JSON.stringify([0, 'o', nl >= 0 ? keyframe.slice(nl + 1) : keyframe]));
  }
  lines.push(...out);
  return lines.join('\n') + '\n';
}
