import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

/**
 * Append-only file that a session streams into while it runs. Writes are batched and flushed at
 * least every `flushMs` (default 250 ms) and whenever 64 KiB are pending, so a crash loses at
 * most the last flush interval. A running SHA-256 over everything written seals the file: the
 * digest goes into the catalog and the audit log at close, so later edits are detectable.
 */
export class RecordingFile {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly hash: Hash = createHash('sha256');
  private closed = false;
  /** Bytes accepted so far (written or pending). */
  bytes = 0;
  /** Set when a write failed: the owner decides what to do (brokers end the session: fail closed). */
  error: Error | undefined;
  onError: ((err: Error) => void) | undefined;

  private constructor(private readonly fh: FileHandle, private readonly flushMs: number) {}

  static async create(path: string, flushMs = 250): Promise<RecordingFile> {
    const fh = await open(path, 'wx', 0o600);
    return new RecordingFile(fh, flushMs);
  }

  append(chunk: string | Buffer): void {
    if (this.closed) return;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.hash.update(buf);
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    this.bytes += buf.length;
    if (this.pendingBytes >= 64 * 1024) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.flushMs);
  }

  /** Starts writing what is pending; resolves when it is in the file. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return this.writing;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.writing = this.writing.then(async () => {
      if (this.error) return;
      try {
        await this.fh.write(data);
      } catch (err) {
        this.error = err as Error;
        this.onError?.(this.error);
      }
    });
    return this.writing;
  }

  /** Flushes, fsyncs and closes; returns the SHA-256 (hex) of the whole content. */
  async close(): Promise<string> {
    if (this.closed) return this.hash.copy().digest('hex');
    await this.flush();
    this.closed = true;
    try {
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
    if (this.error) throw this.error;
    return this.hash.digest('hex');
  }
}
