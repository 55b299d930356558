// The worker of bench/index-follow.ts: the sources are TypeScript run through tsx, and a worker
// thread does not inherit the main thread's loader (as recorder/index/index-worker.mjs).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { Indexer } = await import('../recorder/index/indexer.ts');
const { SqliteIndexStore } = await import('../recorder/index/sqlite-index.ts');
const { dir, id, reps } = workerData;
const meta = JSON.parse(readFileSync(join(dir, `${id}.meta.json`), 'utf8'));
const ns = (path) => Number(readFileSync(path, 'utf8').split(' ')[0]) / 1e6;
const process_ = () => readdirSync('/proc/self/task').reduce((s, t) => { try { return s + ns(`/proc/self/task/${t}/schedstat`); } catch { return s; } }, 0);
const thread = [];
const all = [];
for (let r = 0; r < reps; r++) {
  const tmp = mkdtempSync(join(tmpdir(), 'pam-index-follow-'));
  const store = new SqliteIndexStore(join(tmp, 'index.sqlite'));
  const ix = new Indexer(store, dir);
  const t0 = ns('/proc/thread-self/schedstat');
  const a0 = process_();
  await ix.onMeta({ ...meta, status: 'live' });
  do await ix.tick(); while (ix.behind);
  await ix.onMeta({ ...meta, status: 'ended' });
  while (ix.following.length) await ix.tick();
  thread.push(ns('/proc/thread-self/schedstat') - t0);
  all.push(process_() - a0);
  store.close();
  rmSync(tmp, { recursive: true, force: true });
}
parentPort.postMessage({ thread, all });
