import { escapeJsonBytes, wasmEscapeAvailable } from './json-escape/index.js';
import { RecordingFile } from './recording-file.js';
import { FlushBacklog } from './flush-backlog.js';
import type { TerminalRecorder, WriterClosed } from './recording.types.js';

/** Header fields of an asciicast v2 recording (https://docs.asciinema.org/manual/asciicast/v2/). */
export interface AsciicastHeader {
  width: number;
  height: number;
  env: { TERM?: string; SHELL?: string };
  title: string;
}

/**
 * Consecutive output is gathered into one `o` event for up to OUT_BATCH_MS or OUT_BATCH_BYTES:
 * bulk output then costs one event line per 64 KiB instead of one per SSH packet.
 */
const OUT_BATCH_MS = 10;
const OUT_BATCH_BYTES = 64 * 1024;

/**
 * TerminalRecorder writing asciicast v2 into a RecordingFile (streamed, flushed within 250 ms,
 * sealed with SHA-256 at close).
 *
 * The header is written lazily by `start()` so it can carry the size of the first pty the client
 * asks for; any event before that starts the recording at 80x24. Event times are seconds since
 * the writer was created. Terminal bytes are decoded with one streaming TextDecoder per
 * direction, so a UTF-8 sequence split across chunks survives.
 *
 * Producers relaying bulk data check `backlogged` and await `drained()`: the file then applies
 * backpressure to the session instead of buffering without bound in memory.
 *
 * Output is batched (see OUT_BATCH_MS): a batch carries the time of its first chunk, and any
 * other event first writes the pending batch, so events stay in order. The file flushes
 * OUT_BATCH_MS sooner than asked, so output still reaches the disk within `flushMs`.
 */
export class AsciicastWriter implements TerminalRecorder {
  private readonly t0: number;
  private started = false;
  private readonly outDecoder = new TextDecoder('utf-8');
  private readonly inDecoder = new TextDecoder('utf-8');
  private readonly backlog: FlushBacklog;
  private lastTime = 0;
  /** Pending output: UTF-8 Buffers (ownership taken, never modified) or decoded text. */
  private outItems: (Buffer | string)[] = [];
  private outLen = 0;
  private outAt = 0;
  private outText = false;
  private outTimer: NodeJS.Timeout | undefined;
  /** SHA-256 of the whole file, set by close(). */
  sha256: string | undefined;
  /** Told once the file is closed (RecordingCatalog.start finishes the catalog entry with it). */
  onClosed: ((closed: WriterClosed) => Promise<void>) | undefined;
  private closing: Promise<void> | undefined;

  private constructor(readonly id: string, private readonly file: RecordingFile, private readonly header: AsciicastHeader, t0 = Date.now()) {
    this.backlog = new FlushBacklog(file);
    this.t0 = t0;
  }

  static async create(id: string, path: string, header: AsciicastHeader, flushMs = 250): Promise<AsciicastWriter> {
    return new AsciicastWriter(id, await RecordingFile.create(path, Math.max(1, flushMs - OUT_BATCH_MS)), header);
  }

  /** Writes into a file already open (an SSH recording whose format was chosen after it opened, recorder/ssh-recorder.ts). */
  static over(id: string, file: RecordingFile, header: AsciicastHeader, t0 = Date.now()): AsciicastWriter {
    return new AsciicastWriter(id, file, header, t0);
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

  /** Writes the header; later calls are ignored (sizes changes become `r` events). */
  start(size?: { width: number; height: number; term?: string }): void {
    if (this.started) return;
    this.started = true;
    const h = {
      version: 2,
      width: size?.width || this.header.width,
      height: size?.height || this.header.height,
      timestamp: Math.floor(this.t0 / 1000),
      env: { ...this.header.env, ...(size?.term ? { TERM: size.term } : {}) },
      title: this.header.title,
    };
    this.file.append(JSON.stringify(h) + '\n');
  }

  get isStarted(): boolean {
    return this.started;
  }

  /**
   * Output bytes known to be complete, valid UTF-8 (7-bit ASCII always is) with no sequence
   * pending in the caller's decoder: they are escaped as bytes (json-escape/), never decoded
   * into a string, the bulk of the cost when recording large transfers. The buffer is kept
   * until the batch is written: the caller must not modify it afterwards (ssh2 allocates one
   * per packet).
   */
  outputUtf8(chunk: Buffer, at?: number): void {
    if (chunk.length) this.queueOutput(chunk, chunk.length, false, at);
  }

  output(data: Buffer | string, at?: number): void {
    const text = typeof data === 'string' ? data : this.outDecoder.decode(data, { stream: true });
    if (text) this.queueOutput(text, text.length, true, at);
  }

  input(data: Buffer | string, at?: number): void {
    const text = typeof data === 'string' ? data : this.inDecoder.decode(data, { stream: true });
    if (text) this.event('i', text, at);
  }

  resize(cols: number, rows: number, at?: number): void {
    this.event('r', `${cols}x${rows}`, at);
  }

  marker(label: string, at?: number): void {
    this.event('m', label, at);
  }

  /** True while more than a few MiB wait for the disk; relays pause their source until drained(). */
  get backlogged(): boolean {
    return this.backlog.backlogged;
  }

  drained(): Promise<void> {
    return this.backlog.drained();
  }

  /**
   * Writes the end marker, seals the file (fsync, SHA-256) and tells `onClosed`; rejects if the
   * file could not be written completely (after `onClosed` heard of it). Idempotent.
   */
  close(reason: string): Promise<void> {
    this.closing ??= this.handleClose(reason);
    return this.closing;
  }

  private async handleClose(reason: string): Promise<void> {
    this.start();
    const tail = this.outDecoder.decode();
    if (tail) this.output(tail);
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

  private queueOutput(item: Buffer | string, len: number, text: boolean, at?: number): void {
    this.start();
    if (this.outLen && this.outLen + len > OUT_BATCH_BYTES) this.writeOutput();
    if (!this.outItems.length) this.outAt = at ?? Date.now();
    if (text) this.outText = true;
    this.outItems.push(item);
    this.outLen += len;
    if (this.outLen >= OUT_BATCH_BYTES) this.writeOutput();
    else this.outTimer ??= setTimeout(() => this.writeOutput(), OUT_BATCH_MS);
  }

  /** Writes the pending output batch as one `o` event. */
  private writeOutput(): void {
    if (this.outTimer) {
      clearTimeout(this.outTimer);
      this.outTimer = undefined;
    }
    const items = this.outItems;
    if (!items.length) return;
    const bytes = !this.outText;
    this.outItems = [];
    this.outLen = 0;
    this.outText = false;
    const t = this.time(this.outAt);
    if (bytes && wasmEscapeAvailable) {
      // The escaped body is ASCII-safe UTF-8 and only valid until the next escape: copied now.
      this.file.appendAscii(`[${t}, "o", "`);
      this.file.appendCopy(escapeJsonBytes(items as Buffer[]));
      this.file.appendAscii('"]\n');
    } else {
      const text = items.length === 1 ? str(items[0]!) : items.map(str).join('');
      this.file.append(`[${t}, "o", ${JSON.stringify(text)}]\n`);
    }
    this.backlog.afterAppend();
  }

  private event(type: 'o' | 'i' | 'r' | 'm', data: string, at?: number): void {
    this.writeOutput();
    const t = this.time(at);
    this.file.append(`[${t}, "${type}", ${JSON.stringify(data)}]\n`);
    this.backlog.afterAppend();
  }

  /** Event time in seconds; events must be in time order, so a late given time is clamped forward. */
  private time(at?: number): string {
    this.start();
    const t = Math.max(this.lastTime, ((at ?? Date.now()) - this.t0) / 1000);
    this.lastTime = t;
    return t.toFixed(6);
  }


}

function str(item: Buffer | string): string {
  return typeof item === 'string' ? item : item.toString('utf8');
}
