import { createHash } from 'node:crypto';
import { fstatSync, writeSync } from 'node:fs';
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditEntry, AuditEvent, AuditLog } from './audit.types.js';

const GENESIS = '0'.repeat(64);
/**
 * A write on the event loop slower than this moves the log's later writes to the thread pool
 * (as recorder/recording-file.ts does for recordings): a slow disk then stalls only the appends.
 */
const SLOW_WRITE_MS = 50;
/**
 * Entries are made durable (fdatasync, on the thread pool) at most this long after their write,
 * so an OS crash or power loss loses at most the last second of the log, as for recordings' tails.
 */
const SYNC_MS = 1000;

function entryHash(prev: string, body: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256').update(prev).update('\n').update(JSON.stringify(body)).digest('hex');
}

/** Fields whose values must never reach the log, whatever a caller passes. */
const SECRET_KEYS = /^(token|password|secret_value|value|authorization|jwt)$/i;

/** A runtime defence as well as a typed one: callers outside TypeScript's view (tests, plugins) are scrubbed too. */
function scrub(event: AuditEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { type: event.type };
  for (const [k, v] of Object.entries(event)) if (!SECRET_KEYS.test(k)) out[k] = v;
  return out;
}

/**
 * Append-only JSON lines, each entry hash-chained to the one before (`prev` = previous `hash`,
 * `hash` = sha256(prev + "\n" + entry without hash)). Editing, removing or reordering a line
 * breaks the chain, which `verifyAuditChain` reports. One writer per file (this process).
 */
export interface AuditLogOptions {
  /**
   * Sees every line of the file exactly once, in order, as written (without its newline):
   * the lines there at open, lines another process appended, and our own. The transparency
   * log (recorder/evidence) hashes them into its Merkle tree.
   */
  onLine?: (line: string) => void;
}

export class FileAuditLog implements AuditLog {
  private tail: Promise<unknown> = Promise.resolve();

  private readonly subscribers = new Set<(entry: AuditEntry) => void>();

  /** The timer of the next fdatasync, while written entries wait for one. */
  private syncTimer: NodeJS.Timeout | undefined;
  /** The fdatasync under way, if any (close waits for it). */
  private syncing: Promise<void> = Promise.resolve();
  /** A failed fdatasync: the log can no longer say its entries are durable, so appends refuse. */
  private syncError: Error | undefined;
  /** fdatasync calls made (tests). */
  datasyncs = 0;

  private constructor(
    private readonly path: string,
    private readonly fh: FileHandle,
    private seq: number,
    private last: string,
    private size: number,
    private readonly onLine: ((line: string) => void) | undefined,
  ) {}

  /**
   * `pam secret` appends from another process while the proxy runs: when the file grew behind
   * our back, read what was added and continue the chain from its real last entry.
   */
  private async resync(size: number): Promise<void> {
    if (size < this.size) throw new Error(`audit log ${this.path} shrank from ${this.size} to ${size} bytes while open: refusing to append`);
    const buf = Buffer.alloc(size - this.size);
    const rfh = await open(this.path, 'r');
    try {
      await rfh.read(buf, 0, buf.length, this.size);
    } finally {
      await rfh.close();
    }
    const lines = buf.toString('utf8').split('\n').filter(Boolean);
    for (const l of lines) this.onLine?.(l);
    const lastLine = lines.at(-1);
    if (lastLine) {
      const e = JSON.parse(lastLine) as AuditEntry;
      this.seq = e.seq;
      this.last = e.hash;
    }
    this.size = size;
  }

  static async open(path: string, opts: AuditLogOptions = {}): Promise<FileAuditLog> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    let seq = 0;
    let last = GENESIS;
    let size = 0;
    try {
      const buf = await readFile(path);
      size = buf.length;
      const lines = buf.toString('utf8').split('\n').filter(Boolean);
      for (const l of lines) opts.onLine?.(l);
      const tailLine = lines.at(-1);
      if (tailLine) {
        const e = JSON.parse(tailLine) as AuditEntry;
        seq = e.seq;
        last = e.hash;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`audit log ${path} is unreadable: ${(err as Error).message}`);
    }
    const fh = await open(path, 'a', 0o600);
    return new FileAuditLog(path, fh, seq, last, size, opts.onLine);
  }

  /** Events waiting for the next write, with their callers. */
  private queue: { event: AuditEvent; resolve: (e: AuditEntry) => void; reject: (err: unknown) => void }[] = [];

  /** Until a slow write: fstat and write on the event loop. Never switched back, so writes stay in order. */
  private syncWrites = true;

  /**
   * Appends one entry; resolves once it is written. Appends that arrive while a write is under
   * way go out together in the next write (group commit): one resync and one write for all of
   * them, in arrival order, each chained to the one before, as if appended one by one.
   *
   * What "written" means: the entry is in the file (the page cache), so it survives a crash of
   * this process; an fdatasync follows within a second (SYNC_MS, on the thread pool, off the
   * append's path), so an OS crash or power loss loses at most the last second of entries.
   * The size check and the write are made on the event loop (a few microseconds each for an
   * append into the page cache; two thread-pool round trips per batch cost more, and woke a
   * pool thread twice for each session's start, seal and end). So an append is written within
   * the microtasks that follow it, before the event loop next polls for I/O, unless another
   * process's lines must be read first or a slow disk moved the log to thread-pool writes.
   */
  append(event: AuditEvent): Promise<AuditEntry> {
    return new Promise<AuditEntry>((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      if (this.queue.length === 1) this.tail = this.tail.then(() => this.writeQueued());
    });
  }

  private async writeQueued(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    let entries: AuditEntry[];
    let texts: string[];
    try {
      if (this.syncError) throw new Error(`audit log ${this.path} could not be synced to disk: ${this.syncError.message}`);
      const size = this.syncWrites ? fstatSync(this.fh.fd).size : (await this.fh.stat()).size;
      if (size !== this.size) await this.resync(size);
      entries = [];
      texts = [];
      let { seq, last } = this;
      for (const { event } of batch) {
        const body = { ...scrub(event), seq: seq + 1, time: new Date().toISOString(), prev: last } as Omit<AuditEntry, 'hash'>;
        const entry = { ...body, hash: entryHash(last, body) } as AuditEntry;
        entries.push(entry);
        texts.push(JSON.stringify(entry));
        seq = entry.seq;
        last = entry.hash;
      }
      const data = Buffer.from(texts.join('\n') + '\n', 'utf8');
      if (this.syncWrites) this.writeNow(data);
      else await this.fh.write(data);
      this.size += data.length;
      this.syncSoon();
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const entry = entries[i]!;
      this.onLine?.(texts[i]!);
      this.seq = entry.seq;
      this.last = entry.hash;
      this.notify(entry);
      batch[i]!.resolve(entry);
    }
  }

  /** One fdatasync within SYNC_MS for everything written until it starts. */
  private syncSoon(): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.syncing = this.syncNow();
    }, SYNC_MS);
    this.syncTimer.unref();
  }

  private async syncNow(): Promise<void> {
    await this.syncing;
    this.datasyncs++;
    try {
      await this.fh.datasync();
    } catch (err) {
      this.syncError ??= err as Error;
    }
  }

  /** Writes all of `data` at the end of the file (a nearly full disk can take part of a write). */
  private writeNow(data: Buffer): void {
    const t = performance.now();
    for (let at = 0; at < data.length; ) at += writeSync(this.fh.fd, data, at, data.length - at);
    if (performance.now() - t > SLOW_WRITE_MS) this.syncWrites = false;
  }

  /**
   * Calls `fn` with each entry once it is written, in chain order (metrics, SIEM export). A
   * subscriber that throws does not fail the append: the entry is already on disk. Entries
   * another process appended (`pam secret`) are not seen here; `seq` gaps reveal them.
   * Returns the unsubscribe function.
   */
  onAppend(fn: (entry: AuditEntry) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  private notify(entry: AuditEntry): void {
    for (const fn of this.subscribers) {
      try {
        fn(entry);
      } catch {
        // A subscriber's fault must not fail the append of an audit entry that is on disk.
      }
    }
  }

  async read(opts: { sinceMs?: number } = {}): Promise<AuditEntry[]> {
    await this.tail;
    const text = await readFile(this.path, 'utf8');
    const since = opts.sinceMs ?? 0;
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEntry)
      .filter((e) => Date.parse(e.time) >= since);
  }

  async close(): Promise<void> {
    await this.tail;
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    await (this.syncing = this.syncNow());
    await this.fh.close();
  }
}

export interface ChainCheck {
  ok: boolean;
  entries: number;
  /** 1-based line number of the first entry that does not chain. */
  brokenAt?: number;
  why?: string;
}

/** Re-computes every hash over the log's lines, in order. */
export function checkAuditChain(lines: readonly string[]): ChainCheck {
  let prev = GENESIS;
  for (let i = 0; i < lines.length; i++) {
    let e: AuditEntry;
    try {
      e = JSON.parse(lines[i]!) as AuditEntry;
    } catch {
      return { ok: false, entries: lines.length, brokenAt: i + 1, why: 'not JSON' };
    }
    const { hash, ...body } = e;
    if (e.prev !== prev) return { ok: false, entries: lines.length, brokenAt: i + 1, why: 'prev does not match the previous entry' };
    if (entryHash(prev, body) !== hash) return { ok: false, entries: lines.length, brokenAt: i + 1, why: 'content does not match its hash' };
    if (e.seq !== i + 1) return { ok: false, entries: lines.length, brokenAt: i + 1, why: 'sequence gap' };
    prev = hash;
  }
  return { ok: true, entries: lines.length };
}

/** The log's lines as written (each one leaf of the transparency log). */
export async function readAuditLines(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter(Boolean);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Re-computes every hash from the start of the file. */
export async function verifyAuditChain(path: string): Promise<ChainCheck> {
  return checkAuditChain(await readAuditLines(path));
}
