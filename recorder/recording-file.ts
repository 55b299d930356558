import { createHash, type Hash } from 'node:crypto';
import { writeSync, writevSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { forget, markWritten, type Syncable } from './file-sync.js';

/** First staging buffer of a file; it doubles while appends overflow it, up to STAGE_MAX. */
const STAGE_MIN = 8 * 1024;
const STAGE_MAX = 256 * 1024;
/** appendOwned queues a buffer this large as it is: the copy into the stage would cost more than an iovec. */
const OWN_MIN = 4 * 1024;
/** Pending bytes that start a write without waiting for the timer. */
const WRITE_AT = 256 * 1024;
/**
 * Full-size stages whose bytes are on disk, kept for reuse by any file in the process (at most
 * SPARE_MAX of them, 4 MiB). A fresh 256 KiB buffer per stage is memory outside V8's heap, and
 * at bulk rates that allocation alone makes V8 run a full mark-compact every few tens of MiB
 * ("external memory pressure"); reusing stages removes that share of the churn.
 */
const spare: Buffer[] = [];
const SPARE_MAX = 16;

/** Returns written stages to `spare` for reuse. */
function release(stages: Buffer[]): void {
  for (const b of stages) if (spare.length < SPARE_MAX) spare.push(b);
}
/** Files open in this process, for the write-backlog metric (recordingWriteBacklog). */
const openFiles = new Set<RecordingFile>();

/**
 * What recordings have accepted but not yet written to their files, over every open file, and
 * how long the oldest of those bytes has waited (ms). `pam serve` exports both as metrics.
 */
export function recordingWriteBacklog(now = performance.now()): { files: number; bytes: number; lagMs: number } {
  let bytes = 0;
  let oldest = now;
  for (const f of openFiles) {
    bytes += f.bytes - f.written;
    if (f.bytes > f.written && f.pendingSince !== undefined) oldest = Math.min(oldest, f.pendingSince);
  }
  return { files: openFiles.size, bytes, lagMs: now - oldest };
}

/**
 * A write on the event loop slower than this moves the file's later writes to the thread pool.
 * Not lower: on a busy 2-core machine a 256 KiB write is now and then descheduled for 5-10 ms,
 * and moving a bulk session to the pool for that cost it about 4 s of backlog waits per GiB.
 */
const SLOW_WRITE_MS = 50;

/**
 * Append-only file that a session streams into while it runs. Writes are batched and flushed at
 * least every `flushMs` (default 250 ms) and whenever 256 KiB are pending, so a crash of the
 * process loses at most the last flush interval; what is written is fdatasync'd about a second
 * later (file-sync.ts), so a crash of the machine loses about the last second. A running SHA-256
 * over everything written seals the file: the digest goes into the catalog and the audit log at
 * close, so later edits are detectable.
 *
 * Appends are encoded straight into a staging buffer (no Buffer per event, no concat) that
 * grows while a session is busy and is dropped when the timer flushes an idle one, so a quiet
 * session holds no more than a few KiB. Full stages are hashed once and written with writev.
 *
 * Writes are made on the event loop (writevSync into the page cache, tens of microseconds for a
 * 256 KiB stage). On this 2-core machine the thread-pool alternative cost about 2 ms of CPU per
 * recorded MiB more and let a backlog build while the pool thread waited for a core
 * (BENCHMARKS.md, SSH "Current figures"). A disk that makes one write take longer than
 * SLOW_WRITE_MS moves that file to thread-pool writes for good, so a slow disk stalls only the
 * sessions writing to it, through the usual backlog and drained() backpressure.
 */
export class RecordingFile implements Syncable {
  private stage: Buffer | undefined;
  /** The buffer `stage` is a view of; it goes back to `spare` once its bytes are written. */
  private root: Buffer | undefined;
  /** Retired full-size roots whose last bytes are in the write queue. */
  private retired: Buffer[] = [];
  private used = 0;
  private stageSize = STAGE_MIN;
  private sealed: Buffer[] = [];
  private sealedBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  /** Until a slow write: write on the event loop. Never switched back, so writes stay in order. */
  private syncWrites = true;
  private timer: NodeJS.Timeout | undefined;
  private readonly hash: Hash = createHash('sha256');
  private closed = false;
  /** Bytes accepted so far (written or pending). */
  bytes = 0;
  /** Bytes in the file (or refused by a failed write): `bytes - written` is the backlog. */
  written = 0;
  /** Bytes an fdatasync has made durable (they survive a crash of the machine, not only of this process). */
  synced = 0;
  /** The periodic fdatasync under way, if any (close waits for it). */
  private syncing: Promise<void> | undefined;
  /** performance.now() when the oldest byte not yet written was accepted. */
  pendingSince: number | undefined;
  /** Set when a write failed: the owner decides what to do (brokers end the session: fail closed). */
  error: Error | undefined;
  onError: ((err: Error) => void) | undefined;

  private constructor(private readonly fh: FileHandle, private readonly flushMs: number) {}

  /** `poolWrites` starts the file on thread-pool writes, as after a slow write (tests use it). */
  static async create(path: string, flushMs = 250, opts: { poolWrites?: boolean } = {}): Promise<RecordingFile> {
    const fh = await open(path, 'wx', 0o600);
    const file = new RecordingFile(fh, flushMs);
    if (opts.poolWrites) file.syncWrites = false;
    openFiles.add(file);
    return file;
  }

  append(chunk: string | Buffer): void {
    if (this.closed) return;
    if (typeof chunk !== 'string') return this.appendBytes(chunk);
    // UTF-8 needs at most 3 bytes per UTF-16 unit; count exactly only when that bound does not fit.
    let need = chunk.length * 3;
    if (need > this.room()) {
      need = Buffer.byteLength(chunk, 'utf8');
      if (!this.reserve(need)) return this.appendBytes(Buffer.from(chunk, 'utf8'));
    }
    this.wrote(this.stage!.write(chunk, this.used, 'utf8'));
  }

  /** Appends text the caller knows is 7-bit ASCII: one byte per character, no UTF-8 encoder. */
  appendAscii(text: string): void {
    if (this.closed) return;
    if (!this.reserve(text.length)) return this.appendBytes(Buffer.from(text, 'latin1'));
    this.wrote(this.stage!.write(text, this.used, 'latin1'));
  }

  /** Appends a copy of bytes the caller will reuse (a view into WebAssembly memory). */
  appendCopy(view: Uint8Array): void {
    if (this.closed || !view.length) return;
    if (!this.reserve(view.length)) return this.appendBytes(Buffer.from(view));
    this.stage!.set(view, this.used);
    this.wrote(view.length);
  }

  /**
   * Appends bytes the caller hands over and never modifies afterwards (an SSH packet's Buffer):
   * from OWN_MIN bytes on they are hashed and queued as they are, not copied into the stage.
   */
  appendOwned(buf: Buffer): void {
    if (buf.length < OWN_MIN) return this.appendBytes(buf);
    if (this.closed) return;
    this.queue(buf);
  }

  private appendBytes(buf: Buffer): void {
    if (this.closed || !buf.length) return;
    if (this.reserve(buf.length)) {
      this.wrote(buf.copy(this.stage!, this.used));
      return;
    }
    // Larger than a stage: queued as it is (the caller hands it over).
    this.queue(buf);
  }

  private queue(buf: Buffer): void {
    this.seal();
    this.hash.update(buf);
    this.sealed.push(buf);
    this.sealedBytes += buf.length;
    this.pendingSince ??= performance.now();
    this.bytes += buf.length;
    this.schedule();
  }

  private room(): number {
    return this.stage ? this.stage.length - this.used : 0;
  }

  /** Makes room for n bytes in the stage (sealing a full one); false if n is larger than any stage. */
  private reserve(n: number): boolean {
    if (n <= this.room()) return true;
    if (n > STAGE_MAX) return false;
    if (this.used) {
      this.seal();
      this.stageSize = Math.min(STAGE_MAX, this.stageSize * 2);
    }
    this.retire();
    const size = Math.max(this.stageSize, n);
    this.root = size === STAGE_MAX ? (spare.pop() ?? Buffer.allocUnsafeSlow(STAGE_MAX)) : Buffer.allocUnsafe(size);
    this.stage = this.root;
    this.used = 0;
    return true;
  }

  private wrote(n: number): void {
    this.pendingSince ??= performance.now();
    this.used += n;
    this.bytes += n;
    this.schedule();
  }

  private schedule(): void {
    if (this.sealedBytes + this.used >= WRITE_AT) void this.flush();
    else if (!this.timer) this.timer = setTimeout(() => void this.flush(true), this.flushMs);
  }

  /** The current stage is done with: a full-size one is reused once the queue before it is written. */
  private retire(): void {
    if (this.root?.length === STAGE_MAX) this.retired.push(this.root);
    this.root = undefined;
    this.stage = undefined;
  }

  /** Moves the staged bytes to the write queue; the stage's buffer is reused only after they are written. */
  private seal(): void {
    if (!this.stage || !this.used) return;
    const data = this.stage.subarray(0, this.used);
    this.hash.update(data);
    this.sealed.push(data);
    this.sealedBytes += data.length;
    if (this.used < this.stage.length) this.stage = this.stage.subarray(this.used);
    else this.retire();
    this.used = 0;
  }

  /** Starts writing what is pending; resolves when it is in the file. */
  flush(idle = false): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.closed) return this.writing; // sealed: nothing more enters the hash
    this.seal();
    if (idle) {
      // A timer flush means the session is quiet: give the stage memory back.
      this.retire();
      this.stageSize = STAGE_MIN;
    }
    const data = this.sealed;
    const done = this.retired;
    if (data.length === 0 && done.length === 0) return this.writing;
    this.sealed = [];
    this.sealedBytes = 0;
    this.retired = [];
    const startedAt = performance.now();
    let size = 0;
    for (const b of data) size += b.length;
    const landed = () => {
      this.written += size;
      if (size) markWritten(this);
      // What was accepted while this write ran is younger than its start.
      this.pendingSince = this.written >= this.bytes ? undefined : startedAt;
    };
    if (this.syncWrites) {
      this.writeNow(data);
      landed();
      release(done);
      return this.writing;
    }
    this.writing = this.writing.then(async () => {
      try {
        if (this.error || data.length === 0) return;
        if (data.length === 1) await this.fh.write(data[0]!);
        else await this.fh.writev(data);
      } catch (err) {
        this.error = err as Error;
        this.onError?.(this.error);
      } finally {
        // Writes run in order: every byte staged in these buffers is now in the file (or failed).
        landed();
        release(done);
      }
    });
    return this.writing;
  }

  private writeNow(data: Buffer[]): void {
    if (this.error || data.length === 0) return;
    const t = performance.now();
    try {
      writeAllSync(this.fh.fd, data);
    } catch (err) {
      this.error = err as Error;
      // Reported outside the append that triggered it: the owner may end the session.
      queueMicrotask(() => this.onError?.(this.error!));
    }
    if (performance.now() - t > SLOW_WRITE_MS) this.syncWrites = false;
  }

  /** The periodic fdatasync (file-sync.ts): what is written so far becomes durable. */
  syncNow(): Promise<void> {
    if (this.closed || this.error || this.synced >= this.written) return Promise.resolve();
    const upTo = this.written;
    this.syncing = this.fh.datasync().then(
      () => {
        this.synced = Math.max(this.synced, upTo);
      },
      (err: Error) => {
        // The disk did not keep what it was given: the recording can no longer be trusted to hold
        // what was written, so the owner ends the session (fail closed), as for a failed write.
        this.error ??= err;
        this.onError?.(this.error);
      },
    ).finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** Flushes, fsyncs and closes; returns the SHA-256 (hex) of the whole content. */
  async close(): Promise<string> {
    if (this.closed) return this.hash.copy().digest('hex');
    await this.flush(true);
    // Appends made while that write ran (a session's last output) are staged, with a flush timer
    // set: write them too, so they are in the file and the seal, and no timer runs after it.
    // Bounded, so a source that never stops cannot hold the seal back; later appends are dropped.
    for (let round = 0; round < 8 && (this.used || this.sealed.length); round++) await this.flush(true);
    this.closed = true;
    openFiles.delete(this);
    forget(this);
    try {
      await this.syncing;
      await this.fh.sync();
      this.synced = this.written;
    } finally {
      await this.fh.close();
    }
    if (this.error) throw this.error;
    return this.hash.digest('hex');
  }
}

/** writev that finishes a short write (a nearly full disk can take part of it). */
function writeAllSync(fd: number, data: Buffer[]): void {
  let total = 0;
  for (const b of data) total += b.length;
  let done = writevSync(fd, data);
  if (done === total) return;
  for (const b of data) {
    if (done >= b.length) {
      done -= b.length;
      continue;
    }
    for (let at = done; at < b.length; ) at += writeSync(fd, b, at);
    done = 0;
  }
}
