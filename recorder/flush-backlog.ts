import type { RecordingFile } from './recording-file.js';

/** Bytes written but not yet confirmed on disk above which producers should pause. */
const BACKLOG_LIMIT = 4 * 1024 * 1024;
/** How often (in appended bytes) a confirmation flush is requested. */
const FLUSH_STEP = 512 * 1024;

/**
 * Backpressure for a recording writer (asciicast and raw alike): tracks how much of what was
 * appended the disk has confirmed, asks for a confirmation flush every FLUSH_STEP bytes, and
 * says when producers relaying bulk data should pause until drained().
 */
export class FlushBacklog {
  private confirmed = 0;
  private requested = 0;

  constructor(private readonly file: RecordingFile) {}

  /** True while more than a few MiB wait for the disk; relays pause their source until drained(). */
  get backlogged(): boolean {
    return this.file.bytes - this.confirmed > BACKLOG_LIMIT;
  }

  /** Call after each append. */
  afterAppend(): void {
    if (this.file.bytes - this.requested >= FLUSH_STEP) void this.drained();
  }

  /** Resolves once everything appended so far is on disk. */
  drained(): Promise<void> {
    const target = this.file.bytes;
    this.requested = target;
    return this.file.flush().then(() => {
      if (target > this.confirmed) this.confirmed = target;
    });
  }
}
