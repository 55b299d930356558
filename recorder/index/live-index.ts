import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { RecordingCatalog } from '../catalog.js';
import type { IndexStatus, RecordingSearch, SearchPage, SearchQuery, SessionPage, SessionQuery } from './index.types.js';
import { IndexUnavailable } from './index.types.js';
import { isCorruption, SqliteIndexStore } from './sqlite-index.js';
import type { WorkerIn, WorkerOut } from './index-worker.types.js';

export interface LiveIndexOptions {
  dataDir: string;
  catalog: RecordingCatalog;
  /** How often live recordings are read into the index (ms); a printed word is searchable within about this plus the recording flush (250 ms). */
  tickMs?: number;
  /** Nice value of the worker thread (19: the brokers always come first). */
  nice?: number;
  /** Where the index's own troubles are told (the proxy's log); default stderr. */
  onLog?: (level: 'warn' | 'error', message: string) => void;
}

/**
 * The index as the proxy runs it: one worker thread writes (index-worker.ts), this thread reads
 * through its own read-only connection. Every catalog write is forwarded to the worker, which is
 * the hook that indexes sessions while they run: the brokers do nothing for it.
 */
export class LiveIndex implements RecordingSearch {
  private reader: SqliteIndexStore | undefined;
  private state: IndexStatus = { state: 'starting', done: 0, total: 0 };
  private readonly worker: Worker;
  private readonly unsubscribe: () => void;
  private closed: Promise<void> | undefined;
  private readonly ready: Promise<void>;
  private damageReported = false;
  /** Why the worker started the index afresh (a damaged or foreign file), in order. */
  readonly resets: string[] = [];
  /** Called with every status change and reset (tests, logs). */
  onEvent: ((m: WorkerOut) => void) | undefined;

  private constructor(private readonly opts: LiveIndexOptions) {
    this.worker = new Worker(new URL('./index-worker.mjs', import.meta.url), {
      workerData: { dataDir: opts.dataDir, tickMs: opts.tickMs ?? 500, nice: opts.nice },
      // A small young generation: the worker reads recordings in 64 KiB pieces and lets them go,
      // so frequent scavenges keep its share of the proxy's memory small under bulk transfers.
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
    });
    this.worker.unref();
    let started: () => void;
    let failed: (err: Error) => void;
    this.ready = new Promise((res, rej) => { started = res; failed = rej; });
    this.worker.on('message', (m: WorkerOut) => {
      if (m.type === 'ready') started();
      else if (m.type === 'status') this.state = { state: m.building ? 'building' : 'ready', done: m.done, total: m.total };
      else if (m.type === 'reset') {
        this.resets.push(m.why);
        this.damageReported = false;
        this.log('warn', `pam: index: started afresh (${m.why}); rebuilding from the recordings`);
        this.dropReader();
      }
      else if (m.type === 'error') this.log('error', `pam: index: ${m.message}`);
      this.onEvent?.(m);
    });
    this.worker.on('error', (err) => {
      this.state = { ...this.state, state: 'failed', error: err.message };
      this.log('error', `pam: index worker failed: ${err.message}`);
      failed(err);
    });
    this.unsubscribe = opts.catalog.onWrite((meta) => this.send({ type: 'meta', meta }));
  }

  /** Starts the worker; resolves once the index file is open (catching up goes on in the background). */
  static async start(opts: LiveIndexOptions): Promise<LiveIndex> {
    const index = new LiveIndex(opts);
    await index.ready;
    return index;
  }

  private log(level: 'warn' | 'error', message: string): void {
    if (this.opts.onLog) this.opts.onLog(level, message);
    else console.error(message);
  }

  private send(m: WorkerIn): void {
    if (!this.closed) this.worker.postMessage(m);
  }

  status(): IndexStatus {
    return { ...this.state };
  }

  private dropReader(): void {
    try { this.reader?.close(); } catch { /* gone */ }
    this.reader = undefined;
  }

  private read<T>(fn: (r: SqliteIndexStore) => T): T {
    if (this.closed) throw new IndexUnavailable('the index is closed');
    try {
      this.reader ??= new SqliteIndexStore(join(this.opts.dataDir, 'index.sqlite'), { readonly: true });
      return fn(this.reader);
    } catch (err) {
      if (isCorruption(err) || (err as { code?: string }).code === 'SQLITE_CANTOPEN') {
        this.dropReader();
        const code = (err as { code?: string }).code ?? '';
        // A damaged file (not a missing one: the worker creates that) is started afresh once.
        if (isCorruption(err) && !this.damageReported) {
          this.damageReported = true;
          this.send({ type: 'damaged', why: `a search read a damaged index (${code}: ${(err as Error).message})` });
        }
        throw new IndexUnavailable('the index is being rebuilt; try again in a moment');
      }
      throw err;
    }
  }

  async search(q: SearchQuery): Promise<SearchPage> {
    return this.read((r) => r.search(q));
  }

  async sessions(q: SessionQuery): Promise<SessionPage> {
    return this.read((r) => r.sessions(q));
  }

  /** Reads everything followed one last time and closes the worker. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.unsubscribe();
      // The last connection to close checkpoints the WAL into the file: the writer's.
      this.dropReader();
      const done = new Promise<void>((res) => {
        this.worker.once('exit', () => res());
        this.worker.on('message', (m: WorkerOut) => { if (m.type === 'closed') void this.worker.terminate(); });
      });
      this.worker.postMessage({ type: 'close' } satisfies WorkerIn);
      await Promise.race([done, new Promise((r) => setTimeout(r, 10_000).unref())]);
      await this.worker.terminate();
    })();
    return this.closed;
  }
}
