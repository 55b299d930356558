import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordingMeta } from '../recording.types.js';
import { lineBatchesSync } from '../recording-lines.js';
import type { IndexedFile, IndexOp, IndexStore } from './index.types.js';
import { AsciicastExtractor } from './extract-asciicast.js';
import { QueryLogExtractor } from './extract-query-log.js';
import { RawExtractor } from './extract-raw.js';
import { EXT } from '../catalog.js';
import { RawScanner } from './raw-scan.js';

const ID = /^[0-9a-z]{8,16}-[0-9a-f]{8}$/;
/** Ops written per transaction while a whole file is read. */
const BATCH_OPS = 2000;
/**
 * Bytes read from one followed recording per tick: a bulk transfer cannot hold up the other
 * recordings' ticks. The worker ticks again at once while one is left behind (`behind`).
 */
export const TICK_BYTES = 1024 * 1024;

type Extractor = AsciicastExtractor | QueryLogExtractor | RawExtractor;

/** A recording being read as it grows. */
interface Followed {
  meta: RecordingMeta;
  ex: Extractor;
  /** Bytes read: the next line starts here. */
  offset: number;
  /** The catalog says it ended (the file is sealed) but ticks are still reading what is left. */
  sealed?: boolean;
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
  const startMs = Date.parse(meta.start) || 0;
  if (meta.format === 'raw') return new RawExtractor(startMs);
  return meta.format === 'asciicast' ? new AsciicastExtractor(startMs) : new QueryLogExtractor();
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
  private readonly tickBytes: number;
  private readonly raw = new RawScanner();
  /** True when the last tick or catalog write left bytes of a followed recording unread: tick again soon. */
  behind = false;
  /** Bytes of data files the readers took in so far (a measure of the reading work, for tests and benchmarks). */
  bytesRead = 0;

  constructor(private readonly store: IndexerStore, readonly dir: string, opts: { tickBytes?: number } = {}) {
    this.tickBytes = opts.tickBytes ?? TICK_BYTES;
  }

  get following(): string[] {
    return [...this.followed.keys()];
  }

  private metaPath(id: string): string {
    return join(this.dir, `${id}.meta.json`);
  }

  private dataPath(meta: RecordingMeta): string {
    return join(this.dir, `${meta.id}.${EXT[meta.format] ?? 'cast'}`);
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
    for (const ext of ['cast', 'raw', 'jsonl']) {
      try {
        return statSync(join(this.dir, `${id}.${ext}`)).size;
      } catch { /* try the other format */ }
    }
    return -1;
  }

  /**
   * Re-reads what changed. `skip(meta)` leaves a recording alone (the rebuild beside a running
   * proxy leaves live ones to the proxy). Resolves when the folder and the index agree.
   */
  async sync(opts: {
    skip?: (meta: RecordingMeta) => boolean;
    /** Follow live recordings (the proxy's worker) instead of reading them once (`pam index rebuild`). */
    followLive?: boolean;
    /** Re-read every recording, changed or not (`pam index rebuild`). */
    all?: boolean;
    onProgress?: (p: SyncProgress) => void;
    /** Runs each recording's step; the worker passes its lock, so ticks and catalog writes go in between. */
    step?: (fn: () => Promise<void>) => Promise<void>;
    /** Checked between recordings: true stops the sync (closing). */
    stopped?: () => boolean;
  } = {}): Promise<SyncProgress> {
    const step = opts.step ?? ((fn) => fn());
    const progress = { done: 0, total: 0 };
    let pending: string[] = [];
    await step(async () => {
      const { changed, gone } = this.stale(opts.all);
      this.store.batch(() => { for (const id of gone) this.store.forget(id); });
      progress.total = changed.length;
      pending = changed;
    });
    opts.onProgress?.(progress);
    for (const id of pending) {
      if (opts.stopped?.()) break;
      await step(async () => {
        const meta = this.readMeta(id);
        if (!meta || opts.skip?.(meta) || this.followed.has(id)) return;
        if (meta.status === 'live' && opts.followLive) this.follow(meta, true);
        else await this.indexFile(meta);
      });
      progress.done++;
      opts.onProgress?.(progress);
    }
    return progress;
  }

  /** Reads one recording from its files into the index, replacing what was there. */
  async indexFile(meta: RecordingMeta): Promise<void> {
    const f: Followed = { meta, ex: extractorFor(meta), offset: 0 };
    this.store.batch(() => this.store.forgetData(meta.id));
    let dataSize = -1;
    try {
      dataSize = statSync(this.dataPath(meta)).size;
    } catch { /* no data file: a session row without text */ }
    await this.read(f, true, (ops) => this.store.batch(() => this.store.apply(meta.id, ops)));
    const ops: IndexOp[] = [];
    f.ex.end(ops);
    this.store.batch(() => this.store.apply(meta.id, ops));
    this.finishSession(meta, f.ex, dataSize);
  }

  private finishSession(meta: RecordingMeta, ex: Extractor, dataSize: number): void {
    this.store.batch(() => this.finishWrites(meta, ex, dataSize));
  }

  /** The session row and the file sizes the next sync compares with (inside the caller's transaction). */
  private finishWrites(meta: RecordingMeta, ex: Extractor, dataSize: number): void {
    this.store.upsertSession(meta, ex.summary);
    try {
      const st = statSync(this.metaPath(meta.id));
      this.store.markIndexed({ id: meta.id, metaMtimeMs: st.mtimeMs, metaSize: st.size, dataSize });
    } catch { /* meta gone meanwhile: the next sync drops it */ }
  }

  /** A catalog write (create or update) of this node's proxy. Calls must not overlap (the worker queues them). */
  async onMeta(meta: RecordingMeta): Promise<void> {
    const f = this.followed.get(meta.id);
    if (meta.status === 'live') {
      if (f && f.meta.format !== meta.format) {
        // An SSH recording became raw at its first channel (renamed ID.cast → ID.raw): read it anew.
        this.follow(meta, true);
      } else if (f) {
        f.meta = meta;
        this.store.batch(() => this.store.upsertSession(meta, f.ex.summary));
      } else {
        this.follow(meta, false);
      }
      return;
    }
    if (!f) {
      // Ended before we followed it (or an update of an old one): read it whole if it changed.
      if (this.differs(meta.id, this.store.indexedFile(meta.id))) await this.indexFile(meta);
      return;
    }
    f.meta = meta;
    // The writer sealed the file before this catalog write: everything is on disk. What is more
    // than a tick's bytes is left to the ticks, so the other recordings are read in between.
    f.sealed = true;
    const ops: IndexOp[] = [];
    const more = await this.read(f, true, (o) => { for (const op of o) ops.push(op); }, this.tickBytes);
    if (more) this.behind = true;
    else f.ex.end(ops);
    this.store.batch(() => {
      this.store.apply(meta.id, ops);
      if (!more) this.finish(f);
    });
  }

  /** A sealed recording read to its end: final session row, file sizes; no longer followed. */
  private finish(f: Followed): void {
    this.followed.delete(f.meta.id);
    // Its size on disk: a raw reader's offset may be past the end of a torn last frame it skipped.
    let size = f.offset;
    try {
      size = statSync(this.dataPath(f.meta)).size;
    } catch { /* gone: the next sync drops it */ }
    this.finishWrites(f.meta, f.ex, size);
  }

  private follow(meta: RecordingMeta, fromFiles: boolean): void {
    const f: Followed = { meta, ex: extractorFor(meta), offset: 0 };
    this.followed.set(meta.id, f);
    this.store.batch(() => {
      if (fromFiles) this.store.forgetData(meta.id);
      this.store.upsertSession(meta, f.ex.summary);
    });
  }

  /**
   * Reads what the followed recordings gained, at most `tickBytes` of each; their open output
   * chunks become searchable now. Everything read in one tick is written in one transaction (one
   * WAL commit per tick, however many recordings are followed). Returns the ops written.
   */
  async tick(): Promise<number> {
    const writes: { f: Followed; ops: IndexOp[]; counted: boolean; done: boolean }[] = [];
    let behind = false;
    for (const f of [...this.followed.values()]) {
      const before = f.ex.summary.denials + f.ex.summary.commands;
      const ops: IndexOp[] = [];
      const more = await this.read(f, f.sealed === true, (o) => { for (const op of o) ops.push(op); }, this.tickBytes);
      behind ||= more;
      // Left behind: the next tick comes at once, the open chunk is written when caught up.
      if (!more) (f.sealed ? f.ex.end(ops) : f.ex.pending(ops));
      const done = !more && f.sealed === true;
      const counted = f.ex.summary.denials + f.ex.summary.commands !== before;
      if (ops.length || counted || done) writes.push({ f, ops, counted, done });
    }
    this.behind = behind;
    let n = 0;
    if (writes.length) {
      this.store.batch(() => {
        for (const { f, ops, counted, done } of writes) {
          this.store.apply(f.meta.id, ops);
          if (done) this.finish(f);
          else if (counted) this.store.upsertSession(f.meta, f.ex.summary);
          n += ops.length;
        }
      });
    }
    return n;
  }

  /**
   * Feeds the lines from `f.offset` to the extractor; `onOps` gets the ops of each read chunk.
   * A last line without its newline is left for the next read, unless `toEnd` (the file is
   * sealed or was torn by a crash: it is fed as it is, and a torn line fails to parse).
   * At most `budget` bytes are read (a longer first line whole); returns true when bytes
   * were left unread because of it.
   */
  private async read(f: Followed, toEnd: boolean, onOps: (ops: IndexOp[]) => void, budget = Infinity): Promise<boolean> {
    if (f.ex instanceof RawExtractor) return this.readRaw(f, f.ex, onOps, budget);
    const start = f.offset;
    const end = Number.isFinite(budget) ? start + budget : Infinity;
    let more = false;
    const ex = f.ex;
    // Past an asciicast recording's output cap its output lines are not even decoded.
    const skip = ex instanceof AsciicastExtractor ? () => ex.skipLine : undefined;
    try {
      let ops: IndexOp[] = [];
      reading: for (const batch of lineBatchesSync(this.dataPath(f.meta), f.offset, end, undefined, skip)) {
        for (const line of batch) {
          if (!line.complete) {
            // Cut by the budget, not by the end of the file: the rest comes next time.
            if (line.offset + line.bytes >= end) {
              more = true;
              break reading;
            }
            if (!toEnd) break reading;
          }
          if (!line.skipped) ex.line(line.text, ops);
          f.offset = line.offset + line.bytes;
        }
        if (ops.length >= BATCH_OPS) {
          onOps(ops);
          ops = [];
        }
      }
      this.bytesRead += f.offset - start;
      if (f.offset >= end) more = true;
      if (ops.length) onOps(ops);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // One line longer than the budget: a larger one, until the line fits.
    if (more && f.offset === start) return this.read(f, toEnd, onOps, budget * 2);
    return more;
  }

  /**
   * A raw recording's frames from `f.offset` (a frame boundary): the payloads of Data frames
   * the extractor does not want (a binary stream, output past the cap) are skipped unread.
   */
  private readRaw(f: Followed, ex: RawExtractor, onOps: (ops: IndexOp[]) => void, budget: number): boolean {
    if (ex.isBroken) return false;
    const ops: IndexOp[] = [];
    const before = this.raw.bytesRead;
    const r = this.raw.scan(this.dataPath(f.meta), f.offset, {
      wantsData: (stream, channel) => ex.wantsData(stream, channel),
      frame: (fr) => ex.frame(fr, ops),
      broken: () => ex.broken(),
    }, budget);
    this.bytesRead += this.raw.bytesRead - before;
    f.offset = r.offset;
    if (ops.length) onOps(ops);
    return r.more;
  }
}
