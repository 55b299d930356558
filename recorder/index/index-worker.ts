/**
 * The index worker thread: the one writer of `data_dir/index.sqlite` in a running proxy.
 *
 * It runs at the lowest CPU priority (nice 19; on Linux the nice value is per thread), so under
 * a bulk transfer the brokers keep the CPU and the index catches up afterwards. At start it
 * checks the file (a damaged or foreign file is moved aside and rebuilt), then brings the index
 * in step with the recordings folder in the background while it follows live recordings: every
 * `tickMs` it reads what their files gained. The main thread sends every catalog write.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import type { RecordingMeta } from '../recording.types.js';
import { Indexer } from './indexer.js';
import { openIndexFile, indexFileId } from './index-file.js';
import type { SqliteIndexStore } from './sqlite-index.js';
import { isCorruption } from './sqlite-index.js';
import type { WorkerIn, WorkerOut, WorkerOptions } from './index-worker.types.js';

const opts = workerData as WorkerOptions;
const port = parentPort!;
const post = (m: WorkerOut) => port.postMessage(m);

try {
  setPriority(0, opts.nice ?? 19);
} catch { /* not allowed: run at normal priority */ }

const path = join(opts.dataDir, 'index.sqlite');
const recordings = join(opts.dataDir, 'recordings');
let store: SqliteIndexStore;
let indexer: Indexer;
let fileId = '';
let closing = false;
let syncing: Promise<void> | undefined;
let resync = false;

function open(): void {
  const o = openIndexFile(path, { check: true });
  store = o.store;
  indexer = new Indexer(store, recordings);
  fileId = indexFileId(path);
  if (o.reset) post({ type: 'reset', why: o.reset });
}

/** Catches the index up with the folder; runs again if asked while running. */
function sync(): void {
  if (syncing) { resync = true; return; }
  syncing = (async () => {
    do {
      resync = false;
      post({ type: 'status', building: true, done: 0, total: 0 });
      const p = await indexer.sync({
        followLive: true,
        onProgress: (pr) => { if (pr.done % 50 === 0 || pr.done === pr.total) post({ type: 'status', building: pr.done < pr.total, ...pr }); },
        pause: () => (closing ? Promise.reject(new Error('closing')) : new Promise((r) => setImmediate(r))),
      });
      post({ type: 'status', building: false, ...p });
    } while (resync && !closing);
  })().catch(fail).finally(() => { syncing = undefined; });
}

/** A damaged index found while running: start over from the files. */
function fail(err: unknown): void {
  if (closing) return;
  if (isCorruption(err) || (err as NodeJS.ErrnoException)?.code === 'SQLITE_READONLY_DBMOVED') {
    try { store.close(); } catch { /* already unusable */ }
    open();
    post({ type: 'reset', why: (err as Error).message });
    sync();
    return;
  }
  post({ type: 'error', message: (err as Error)?.message ?? String(err) });
}

function guarded(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    fail(err);
  }
}

open();
post({ type: 'ready' });
sync();

let beats = 0;
const timer = setInterval(() => guarded(() => {
  indexer.tick();
  if (++beats % Math.max(1, Math.round(2000 / opts.tickMs)) === 0) {
    // The file deleted or replaced under us: reopen and rebuild (a damaged file is found by the next read).
    if (indexFileId(path) !== fileId) throw Object.assign(new Error('index file deleted or replaced'), { code: 'SQLITE_CORRUPT_VTAB' });
    store.setInfo('owner', JSON.stringify({ pid: process.pid, beat: Date.now() }));
  }
}), opts.tickMs);

port.on('message', (m: WorkerIn) => {
  if (m.type === 'meta') guarded(() => indexer.onMeta(m.meta as RecordingMeta));
  else if (m.type === 'sync') sync();
  else if (m.type === 'close') {
    closing = true;
    clearInterval(timer);
    void (syncing ?? Promise.resolve()).then(() => {
      guarded(() => indexer.tick());
      try {
        store.setInfo('owner', '{}');
        store.close();
      } catch { /* closing anyway */ }
      post({ type: 'closed' });
      port.close();
    });
  }
});
