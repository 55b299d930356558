import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordingMeta } from '../recording.types.js';
import type { IndexedFile, IndexOp, IndexStore } from './index.types.js';
import { AsciicastExtractor } from './extract-asciicast.js';
import { QueryLogExtractor } from './extract-query-log.js';

const ID = /^[0-9a-z]{8,16}-[0-9a-f]{8}$/;
const READ_CHUNK = 1024 * 1024;
/** Ops written per transaction while a whole file is read. */
const BATCH_OPS = 2000;

type Extractor = AsciicastExtractor | QueryLogExtractor;

/** A recording being read as it grows. */
interface Followed {
  meta: RecordingMeta;
  ex: Extractor;
  offset: number;
  carry: Buffer;
}

export interface IndexerStore extends IndexStore {
  /** Drops what was indexed from a recording's data file, keeping its session row. */
  forgetData(recording: string): void;
  indexedFile(id: string): IndexedFile | undefined;
}

export interface SyncProgress {
  done: number;
  total: number;
}

function extractorFor(meta: RecordingMeta): Extractor {
  return meta.format === 'asciicast' ? new AsciicastExtractor(Date.parse(meta.start) || 0) : new QueryLogExtractor();
}

/**
 * Keeps an IndexStore in step with a recordings folder. Synchronous by design: it runs in the
 * index worker thread (index-worker.ts), off the brokers' event loop, or in `pam index rebuild`.
 *
 * - `indexFile(id)` reads one recording from its files (rebuild, catch-up).
 * - `onMeta(meta)` is fed every catalog write: a live recording is followed, an ended one read
 *   to its end and closed; `tick()` reads what the followed files gained since the last tick.
 * - `sync()` compares the folder with what the index holds (`files` table: meta mtime and size,
 *   data size) and re-reads only what changed or is missing; recordings gone from disk are
 *   dropped.
 */
export class Indexer {
  private readonly followed = new Map<string, Followed>();

  constructor(private readonly store: IndexerStore, readonly dir: string) {}

  get following(): string[] {
    return [...this.followed.keys()];
  }

  private metaPath(id: string): string {
    return join(this.dir, `${id}.meta.json`);
  }

  private dataPath(meta: RecordingMeta): string {
    return join(this.dir, `${meta.id}.${meta.format === 'asciicast' ? 'cast' : 'jsonl'}`);
  }

  private readMeta(id: string): RecordingMeta | undefined {
    try {
      const m = JSON.parse(readFileSync(this.metaPath(id), 'utf8')) as RecordingMeta;
      return m && m.id === id ? m : undefined;
    } catch {
      return undefined;
    }
  }

  /** Recording ids on disk, oldest first (ids start with the creation time). */
  listIds(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.filter((n) => n.endsWith('.meta.json')).map((n) => n.slice(0, -'.meta.json'.length)).filter((id) => ID.test(id)).sort();
  }

  /** Ids whose files differ from what the index holds, and ids indexed but gone from disk. */
  stale(all = false): { changed: string[]; gone: string[] } {
    const known = this.store.indexedFiles();
    const changed: string[] = [];
    const onDisk = new Set<string>();
    for (const id of this.listIds()) {
      onDisk.add(id);
      if (!this.followed.has(id) && (all || this.differs(id, known.get(id)))) changed.push(id);
    }
    const gone = [...known.keys()].filter((id) => !onDisk.has(id));
    return { changed, gone };
  }

  private differs(id: string, f: IndexedFile | undefined): boolean {
    if (!f) return true;
    try {
      const st = statSync(this.metaPath(id));
      return st.mtimeMs !== f.metaMtimeMs || st.size !== f.metaSize || this.dataSize(id) !== f.dataSize;
    } catch {
      return true;
    }
  }

  private dataSize(id: string): number {
    for (const ext of ['cast', 'jsonl']) {
      try {
        return statSync(join(this.dir, `${id}.${ext}`)).size;
      } catch { /* try the other format */ }
    }
    return -1;
  }

  /**
   * Re-reads what changed. `skip(meta)` leaves a recording alone (the rebuild beside a running
   * proxy leaves live ones to the proxy). `pause` lets the caller serve messages between
   * recordings; it resolves when the folder and the index agree.
   */
  async sync(opts: {
    skip?: (meta: RecordingMeta) => boolean;
    /** Follow live recordings (the proxy's worker) instead of reading them once (`pam index rebuild`). */
    followLive?: boolean;
    /** Re-read every recording, changed or not (`pam index rebuild`). */
    all?: boolean;
    onProgress?: (p: SyncProgress) => void;
    pause?: () => Promise<void>;
  } = {}): Promise<SyncProgress> {
    const { changed, gone } = this.stale(opts.all);
    this.store.batch(() => { for (const id of gone) this.store.forget(id); });
    const progress = { done: 0, total: changed.length };
    opts.onProgress?.(progress);
    for (const id of changed) {
      const meta = this.readMeta(id);
      if (meta && !opts.skip?.(meta) && !this.followed.has(id)) {
        if (meta.status === 'live' && opts.followLive) this.follow(meta, true);
        else this.indexFile(meta);
      }
      progress.done++;
      opts.onProgress?.(progress);
      if (opts.pause) await opts.pause();
    }
    return progress;
  }

  /** Reads one recording from its files into the index, replacing what was there. */
  indexFile(meta: RecordingMeta): void {
    const ex = extractorFor(meta);
    const path = this.dataPath(meta);
    let dataSize = -1;
    this.store.batch(() => this.store.forgetData(meta.id));
    let ops: IndexOp[] = [];
    const flush = () => {
      const batch = ops;
      ops = [];
      this.store.batch(() => this.store.apply(meta.id, batch));
    };
    try {
      dataSize = statSync(path).size;
      const f: Followed = { meta, ex, offset: 0, carry: Buffer.alloc(0) };
      this.read(f, ops, () => { if (ops.length >= BATCH_OPS) flush(); });
      if (f.carry.length) ex.line(f.carry.toString('utf8'), ops); // a last line without its newline
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    ex.end(ops);
    flush();
    this.finishSession(meta, ex, dataSize);
  }

  private finishSession(meta: RecordingMeta, ex: Extractor, dataSize: number): void {
    this.store.batch(() => {
      this.store.upsertSession(meta, ex.summary);
      try {
        const st = statSync(this.metaPath(meta.id));
        this.store.markIndexed({ id: meta.id, metaMtimeMs: st.mtimeMs, metaSize: st.size, dataSize });
      } catch { /* meta gone meanwhile: the next sync drops it */ }
    });
  }

  /** A catalog write (create or update) of this node's proxy. */
  onMeta(meta: RecordingMeta): void {
    const f = this.followed.get(meta.id);
    if (meta.status === 'live') {
      if (f) {
        f.meta = meta;
        this.store.batch(() => this.store.upsertSession(meta, f.ex.summary));
      } else {
        this.follow(meta, false);
      }
      return;
    }
    if (!f) {
      // Ended before we followed it (or an update of an old one): read it whole if it changed.
      if (this.differs(meta.id, this.store.indexedFile(meta.id))) this.indexFile(meta);
      return;
    }
    f.meta = meta;
    const ops: IndexOp[] = [];
    this.read(f, ops);
    if (f.carry.length) f.ex.line(f.carry.toString('utf8'), ops);
    f.ex.end(ops);
    this.store.batch(() => this.store.apply(meta.id, ops));
    this.followed.delete(meta.id);
    this.finishSession(meta, f.ex, f.offset + f.carry.length);
  }

  private follow(meta: RecordingMeta, fromFiles: boolean): void {
    const f: Followed = { meta, ex: extractorFor(meta), offset: 0, carry: Buffer.alloc(0) };
    this.followed.set(meta.id, f);
    this.store.batch(() => {
      if (fromFiles) this.store.forgetData(meta.id);
      this.store.upsertSession(meta, f.ex.summary);
    });
  }

  /** Reads what the followed recordings gained; their open output chunks become searchable now. */
  tick(): number {
    let ops: IndexOp[] = [];
    const all: [string, IndexOp[]][] = [];
    for (const f of this.followed.values()) {
      const before = f.ex.summary.denials + f.ex.summary.commands;
      this.read(f, ops);
      f.ex.pending(ops);
      if (ops.length) all.push([f.meta.id, ops]);
      if (f.ex.summary.denials + f.ex.summary.commands !== before) all.push([f.meta.id, []]);
      ops = [];
    }
    if (!all.length) return 0;
    let n = 0;
    this.store.batch(() => {
      for (const [id, o] of all) {
        this.store.apply(id, o);
        n += o.length;
        const f = this.followed.get(id);
        if (f) this.store.upsertSession(f.meta, f.ex.summary);
      }
    });
    return n;
  }

  /** Complete lines from `f.offset` to the end of the file. */
  private read(f: Followed, ops: IndexOp[], afterChunk?: () => void): void {
    let fd: number;
    try {
      fd = openSync(this.dataPath(f.meta), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      for (;;) {
        const n = readSync(fd, buf, 0, READ_CHUNK, f.offset + f.carry.length);
        if (n <= 0) break;
        const data = f.carry.length ? Buffer.concat([f.carry, buf.subarray(0, n)]) : buf.subarray(0, n);
        let from = 0;
        for (;;) {
          const nl = data.indexOf(10, from);
          if (nl < 0) break;
          if (nl > from) f.ex.line(data.toString('utf8', from, nl), ops);
          from = nl + 1;
        }
        f.offset += from;
        f.carry = Buffer.from(data.subarray(from));
        afterChunk?.();
      }
    } finally {
      closeSync(fd);
    }
  }
}
