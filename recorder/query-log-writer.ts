import { RecordingFile } from './recording-file.js';
import type { QueryRecorder, WriterClosed } from './recording.types.js';

const BATCH_MS = 25;

/**
 * QueryRecorder for Postgres sessions: one JSON object per line, streamed to
 * `recordings/ID.jsonl` while the session runs (RecordingFile flushes within 250 ms).
 *
 * Lines, each with `t` (ISO time) and `type`:
 * - `start`: user, subject, login, target, database, client (address), grant
 * - `statement`: sql, protocol (simple|extended), statement/portal names, params, duration_ms,
 *   tag, rows, or error {sqlstate, message}; copy {direction, bytes}; verdict when a policy spoke
 * - `notice`, `error` (`from: "proxy"`): what the proxy itself told the client, a NoticeResponse
 *   (hold waiting, approved, shutdown warning) or the FATAL that ended the session: severity,
 *   sqlstate, message
 * - `end`: reason
 *
 * Close seals the file: its SHA-256 goes to `onClosed`, which RecordingCatalog.start points at
 * the catalog entry (`sha256`).
 */
export class QueryLogWriter implements QueryRecorder {
  private closing: Promise<void> | undefined;
  /** Lines gathered for up to BATCH_MS, so a busy session costs one append (and hash update) per batch. */
  private batch = '';
  private timer: NodeJS.Timeout | undefined;
  /** Called once if the file cannot be written; the broker ends the session (fail closed). */
  onError: ((err: Error) => void) | undefined;
  /** Told once the file is closed (RecordingCatalog.start finishes the catalog entry with it). */
  onClosed: ((closed: WriterClosed) => Promise<void>) | undefined;
  /** SHA-256 of the whole file, set by close() when it could be sealed. */
  sha256: string | undefined;

  private constructor(
    readonly id: string,
    private readonly file: RecordingFile,
  ) {
    file.onError = (err) => this.onError?.(err);
  }

  /** Creates the data file at `path` and writes the `start` line. */
  static async open(id: string, path: string, start: Record<string, unknown>): Promise<QueryLogWriter> {
    // The file flushes BATCH_MS sooner, so a line still reaches the disk within 250 ms.
    const file = await RecordingFile.create(path, 250 - BATCH_MS);
    const w = new QueryLogWriter(id, file);
    w.event({ type: 'start', ...start });
    return w;
  }

  event(event: Record<string, unknown>): void {
    if (this.closing) return;
    const line = event.t === undefined ? { t: new Date().toISOString(), ...event } : event;
    this.batch += JSON.stringify(line) + '\n';
    if (this.batch.length >= 32 * 1024) this.drain();
    else this.timer ??= setTimeout(() => this.drain(), BATCH_MS);
  }

  /** Appends one line that is already a JSON object (the Postgres relay builds them directly). */
  line(json: string): void {
    if (this.closing) return;
    this.batch += json + '\n';
    if (this.batch.length >= 32 * 1024) this.drain();
    else this.timer ??= setTimeout(() => this.drain(), BATCH_MS);
  }

  private drain(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.batch) return;
    this.file.append(this.batch);
    this.batch = '';
  }

  /**
   * Writes the end line, seals the file and tells `onClosed` (the catalog entry is marked ended,
   * or interrupted when the file could not be written completely). Idempotent.
   */
  close(reason: string): Promise<void> {
    if (this.closing) return this.closing;
    this.event({ type: 'end', reason });
    this.drain();
    this.closing = (async () => {
      let error: Error | undefined;
      try {
        this.sha256 = await this.file.close();
      } catch (err) {
        error = err as Error;
      }
      await this.onClosed?.({ reason, bytes: this.file.bytes, ...(this.sha256 ? { sha256: this.sha256 } : {}), ...(error ? { error } : {}) });
    })();
    return this.closing;
  }
}
