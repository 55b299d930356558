/**
 * The index worker thread: the one writer of `data_dir/index.sqlite` in a running proxy.
 *
 * It runs at the lowest CPU priority (nice 19 and SCHED_IDLE: thread-priority.ts), so under
 * a bulk transfer the brokers keep the CPU and the index catches up afterwards. At start it
 * checks the file (a damaged or foreign file is deleted and rebuilt), then brings the index in
 * step with the recordings folder in the background while it follows live recordings: every
 * `tickMs` it reads what their files gained (at most TICK_BYTES of each per tick, all of it
 * written in one transaction), and at once again while a recording is left behind, so a bulk
 * transfer is caught up with while the others are still read every round. The main thread sends
 * every catalog write. One lock orders all work: a tick, a catalog write, one recording of the
 * catch-up.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lowerThreadPriority } from './thread-priority.js';
import { join } from 'node:path';
import { Indexer } from './indexer.js';
import { indexFileId, openIndexFile } from './index-file.js';
import { isCorruption, type SqliteIndexStore } from './sqlite-index.js';
import type { WorkerIn, WorkerOptions, WorkerOut } from './index-worker.types.js';

const opts = workerData as WorkerOptions;
const port = parentPort!;
const post = (m: WorkerOut) => port.postMessage(m);

lowerThreadPriority(opts.nice ?? 19);

const path = join(opts.dataDir, 'index.sqlite');
const recordings = join(opts.dataDir, 'recordings');
let store: SqliteIndexStore;
let indexer: Indexer;
let fileId = '';
let closing = false;
let syncing = false;
let resync = false;
let lock: Promise<void> = Promise.resolve();

/** Runs `fn` after everything queued before it; a failure is handled and does not stop the queue. */
function locked(fn: () => Promise<unknown> | unknown): Promise<void> {
  const run = lock.then(async () => {
    try {
      await fn();
    } catch (err) {
      fail(err);
    }
  });
  lock = run;
  return run;
}

function open(check = false): void {
  const o = openIndexFile(path, { check });
  store = o.store;
  indexer = new Indexer(store, recordings);
  fileId = indexFileId(path);
  if (o.reset) post({ type: 'reset', why: o.reset });
}

/**
 * One recording of the catch-up by `of`, after the events that came meanwhile. Reading a recording is
 * synchronous, so without this turn of the event loop the whole catch-up ran as one chain of
 * microtasks: no tick of a live recording, no catalog write, no reset and no close was handled
 * until it ended (minutes at 10^5 recordings).
 */
async function stepAfterEvents(of: Indexer, fn: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  // A reset may have come meanwhile: the step is of the store it closed.
  return locked(() => (indexer === of ? fn() : undefined));
}

/** Catches the index up with the folder; runs once more if asked while running. */
async function sync(): Promise<void> {
  if (syncing) { resync = true; return; }
  syncing = true;
  try {
    do {
      resync = false;
      // A reset (fail() below) replaces the indexer and its store: this pass then stops, and
      // the pass that follows (the reset asks for one) catches the new file up.
      const current = indexer;
      post({ type: 'status', building: true, done: 0, total: 0 });
      const p = await current.sync({
        followLive: true,
        step: (fn) => stepAfterEvents(current, fn),
        stopped: () => closing || indexer !== current,
        onProgress: (pr) => { if (pr.done % 50 === 0 || pr.done === pr.total) post({ type: 'status', building: pr.done < pr.total, ...pr }); },
      });
      if (indexer === current) post({ type: 'status', building: false, ...p });
    } while (resync && !closing);
  } finally {
    syncing = false;
  }
}

/** A damaged or vanished index found while running: start over from the files. */
function fail(err: unknown): void {
  if (closing) return;
  if (isCorruption(err) || /^SQLITE_(IOERR|READONLY_DBMOVED|CANTOPEN)/.test((err as { code?: string })?.code ?? '')) {
    try { store.close(); } catch { /* already unusable */ }
    try {
      open(true);
    } catch (e) {
      post({ type: 'error', message: `index cannot be reopened: ${(e as Error).message}` });
      return;
    }
    post({ type: 'reset', why: (err as Error).message });
    void sync();
    return;
  }
  post({ type: 'error', message: (err as Error)?.message ?? String(err) });
}

/** What the followed recordings gained, read before closing (for at most 5 s: the rest is read at the next start). */
async function finalTick(): Promise<void> {
  const until = Date.now() + 5000;
  do await indexer.tick();
  while (indexer.behind && Date.now() < until);
}

// Open fast (the proxy waits for this), then read every page in the background: a damaged
// file found by the check is started afresh before the catch-up.
open();
post({ type: 'ready' });
void locked(() => store.check()).then(() => sync());

let lastBeat = Date.now();
let timer: NodeJS.Timeout | undefined;
/** The next tick: after tickMs, or at once (after the messages queued meanwhile) while behind. */
function schedule(): void {
  if (closing) return;
  timer = setTimeout(() => {
    void locked(async () => {
      await indexer.tick();
      if (Date.now() - lastBeat >= 2000) {
        lastBeat = Date.now();
        // The file deleted or replaced under us: reopen and rebuild.
        if (indexFileId(path) !== fileId) throw Object.assign(new Error('index file deleted or replaced'), { code: 'SQLITE_CANTOPEN' });
        store.setInfo('owner', JSON.stringify({ pid: process.pid, beat: lastBeat }));
      }
    }).finally(schedule);
  }, indexer.behind ? 0 : opts.tickMs);
}
schedule();

port.on('message', (m: WorkerIn) => {
  if (m.type === 'meta') void locked(() => indexer.onMeta(m.meta));
  else if (m.type === 'sync') void sync();
  else if (m.type === 'damaged') void locked(() => { throw Object.assign(new Error(m.why), { code: 'SQLITE_CORRUPT' }); });
  else if (m.type === 'close') {
    closing = true;
    clearTimeout(timer);
    void locked(finalTick).then(() => {
      try {
        store.setInfo('owner', '{}');
        store.close();
      } catch { /* closing anyway */ }
      post({ type: 'closed' });
      port.close();
    });
  }
});
