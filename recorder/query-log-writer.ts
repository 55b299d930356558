import type { RecordingCatalog } from './catalog.js';
import { RecordingFile } from './recording-file.js';
import type { QueryRecorder, RecordingMeta } from './recording.types.js';

const BATCH_MS = 25;

/**
 * QueryRecorder for Postgres sessions: one JSON object per line, streamed to
 * `recordings/ID.jsonl` while the session runs (RecordingFile flushes within 250 ms).
 *
 * Lines, each with `t` (ISO time) and `type`:
 * - `start`: user, subject, login, target, database, client (address), grant
 * - `statement`: sql, protocol (simple|extended), statement/portal names, params, duration_ms,
 *   tag, rows, or error {sqlstate, message}; copy {direction, bytes}; verdict when a policy spoke
 * - `end`: reason
 *
 * Close seals the file: its SHA-256 goes into the catalog entry (`sha256`).
 */
export class QueryLogWriter implements QueryRecorder {
  private closing: Promise<void> | undefined;
  /** Lines gathered for up to BATCH_MS, so a busy session costs one append (and hash update) per batch. */
  private batch = '';
  private timer: NodeJS.Timeout | undefined;
  /** Called once if the file cannot be written; the broker ends the session (fail closed). */
  onError: ((err: Error) => void) | undefined;

  private constructor(
    readonly id: string,
    private readonly file: RecordingFile,
    private readonly catalog: RecordingCatalog,
  ) {
    file.onError = (err) => this.onError?.(err);
  }

  static async create(
    catalog: RecordingCatalog,
    meta: Omit<RecordingMeta, 'id' | 'status' | 'bytes' | 'start' | 'format' | 'protocol'>,
    start: Record<string, unknown>,
  ): Promise<QueryLogWriter> {
    const { meta: full, path } = await catalog.create({ ...meta, protocol: 'postgres', format: 'jsonl' });
    // The file flushes BATCH_MS sooner, so a line still reaches the disk within 250 ms.
    const file = await RecordingFile.create(path, 250 - BATCH_MS);
    const w = new QueryLogWriter(full.id, file, catalog);
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

  /** Writes the end line, seals the file and marks the catalog entry ended. Idempotent. */
  close(reason: string): Promise<void> {
    if (this.closing) return this.closing;
    this.event({ type: 'end', reason });
    this.drain();
    this.closing = (async () => {
      let sha256: string | undefined;
      let status: RecordingMeta['status'] = 'ended';
      try {
        sha256 = await this.file.close();
      } catch {
        status = 'interrupted';
      }
      await this.catalog.update(this.id, { status, end: new Date().toISOString(), endReason: reason, bytes: this.file.bytes, sha256 });
    })();
    return this.closing;
  }
}
