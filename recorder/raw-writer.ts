import { RecordingFile } from './recording-file.js';
import { FlushBacklog } from './flush-backlog.js';
import type { WriterClosed } from './recording.types.js';
import { encodeHeader, FRAME_HEADER, FrameType, streamCode, writeFrameHeader, type RawHeader, type RawStream } from './raw-frame.js';

/** Consecutive data of one channel and stream share a frame for up to BATCH_MS or BATCH_BYTES. */
const BATCH_MS = 10;
const BATCH_BYTES = 64 * 1024;

/**
 * Writes the raw format (raw-frame.ts) into a RecordingFile: streamed, flushed within the
 * file's interval (a SIGKILL loses at most that), sealed with the file's running SHA-256.
 *
 * Data is never decoded or copied into a JS string: each SSH packet's Buffer is kept (ssh2
 * allocates one per packet and never reuses it) until it is in the file: a packet of 4 KiB or
 * more is hashed and written as it is (RecordingFile.appendOwned), a smaller one copied into the
 * file's stage. Other frames first write the pending batch, so frames stay in order.
 */
export class RawWriter {
  private readonly t0: number;
  private readonly scratch = Buffer.allocUnsafe(FRAME_HEADER);
  private items: Buffer[] = [];
  private len = 0;
  private batchKey = -1;
  private batchAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastT = 0;
  private nextChannel = 0;
  private readonly backlog: FlushBacklog;
  private closing: Promise<void> | undefined;
  sha256: string | undefined;
  onClosed: ((closed: WriterClosed) => Promise<void>) | undefined;

  private constructor(readonly id: string, private readonly file: RecordingFile, header: Omit<RawHeader, 'version' | 'timestamp'>, t0: number) {
    this.backlog = new FlushBacklog(file);
    this.t0 = t0;
    file.append(encodeHeader({ version: 1, timestamp: t0, ...header }));
  }

  /** Writes into a file already open (an SSH recording whose format was chosen after it opened). */
  static over(id: string, file: RecordingFile, header: Omit<RawHeader, 'version' | 'timestamp'>, t0 = Date.now()): RawWriter {
    return new RawWriter(id, file, header, t0);
  }

  static async create(id: string, path: string, header: Omit<RawHeader, 'version' | 'timestamp'>, flushMs = 250): Promise<RawWriter> {
    return new RawWriter(id, await RecordingFile.create(path, Math.max(1, flushMs - BATCH_MS)), header, Date.now());
  }

  get bytes(): number {
    return this.file.bytes;
  }

  get error(): Error | undefined {
    return this.file.error;
  }

  set onError(fn: ((err: Error) => void) | undefined) {
    this.file.onError = fn;
  }

  /** Starts a channel; returns its number for `data`. */
  channel(info: { kind: string; label?: string; pty?: boolean; stdin?: 'judged' }, at?: number): number {
    const n = this.nextChannel++ & 0xffff;
    this.frame(FrameType.Channel, 0, n, Buffer.from(JSON.stringify(info), 'utf8'), at);
    return n;
  }

  /**
   * Bytes carried on a channel. The buffer is kept until its batch is written: the caller must
   * not modify it afterwards.
   */
  data(channel: number, stream: RawStream, chunk: Buffer, at?: number): void {
    if (!chunk.length) return;
    const key = channel * 4 + streamCode(stream);
    const now = at ?? Date.now();
    // A batch never spans more than BATCH_MS, so each byte's recorded time is within that of when it passed.
    if (this.len && (key !== this.batchKey || this.len + chunk.length > BATCH_BYTES || now - this.batchAt > BATCH_MS)) this.writeBatch();
    if (!this.items.length) {
      this.batchKey = key;
      this.batchAt = now;
    }
    this.items.push(chunk);
    this.len += chunk.length;
    if (this.len >= BATCH_BYTES) this.writeBatch();
    else this.timer ??= setTimeout(() => this.writeBatch(), BATCH_MS);
  }

  marker(label: string, at?: number): void {
    this.frame(FrameType.Marker, 0, 0, Buffer.from(label, 'utf8'), at);
  }

  resize(cols: number, rows: number, at?: number, channel = 0): void {
    const p = Buffer.allocUnsafe(4);
    p.writeUInt16BE(Math.max(0, Math.min(0xffff, cols)), 0);
    p.writeUInt16BE(Math.max(0, Math.min(0xffff, rows)), 2);
    this.frame(FrameType.Resize, 0, channel, p, at);
  }

  /** A file moved through sftp, scp or rsync (sftp-audit.ts, transfer-log.ts). */
  transfer(record: Record<string, unknown>, at?: number): void {
    this.frame(FrameType.Transfer, 0, 0, Buffer.from(JSON.stringify(record), 'utf8'), at);
  }

  get backlogged(): boolean {
    return this.backlog.backlogged;
  }

  drained(): Promise<void> {
    return this.backlog.drained();
  }

  /** Writes the end marker, seals the file and tells `onClosed`; rejects if it could not be written completely. Idempotent. */
  close(reason: string): Promise<void> {
    this.closing ??= this.handleClose(reason);
    return this.closing;
  }

  private async handleClose(reason: string): Promise<void> {
    this.marker(`end: ${reason}`);
    let error: Error | undefined;
    try {
      this.sha256 = await this.file.close();
    } catch (err) {
      error = err as Error;
    }
    await this.onClosed?.({ reason, bytes: this.file.bytes, ...(this.sha256 ? { sha256: this.sha256 } : {}), ...(error ? { error } : {}) });
    if (error) throw error;
  }

  private frame(type: FrameType, stream: number, channel: number, payload: Buffer, at?: number): void {
    this.writeBatch();
    writeFrameHeader(this.scratch, 0, type, stream, channel, this.time(at), payload.length);
    this.file.appendCopy(this.scratch);
    this.file.append(payload);
    this.backlog.afterAppend();
  }

  private writeBatch(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.items.length) return;
    const items = this.items;
    writeFrameHeader(this.scratch, 0, FrameType.Data, this.batchKey & 3, this.batchKey >> 2, this.time(this.batchAt), this.len);
    this.items = [];
    this.len = 0;
    this.file.appendCopy(this.scratch);
    for (const b of items) this.file.appendOwned(b);
    this.backlog.afterAppend();
  }

  /** Frame times never go backwards (a late given time is clamped forward). */
  private time(at?: number): number {
    const t = Math.max(this.lastT, (at ?? Date.now()) - this.t0);
    this.lastT = t;
    return t;
  }


}
