/**
 * The index worker's CPU per recording, without the proxy around it: the live path (Indexer.onMeta
 * of the recording as live, ticks until caught up, onMeta as ended, ticks until finished) over
 * each recording of DIR, read into a fresh index file, --reps times, in a worker thread with the
 * resource limits live-index.ts gives the proxy's (--young, MB of young generation; 0: none).
 * CPU: the worker thread's run time from /proc/thread-self/schedstat, and the whole process's
 * (the worker's GC helpers on the platform threads included; the main thread only waits).
 * For A/B runs against another checkout, run the same command in both, alternately.
 *
 *   npm run bench index-follow -- DIR [--reps 8] [--young 8]
 *
 * DIR: a recordings folder (ID.meta.json with ID.raw, ID.cast or ID.jsonl), e.g. a copy of a
 * `pam serve` data_dir/recordings after the session to measure.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const dir = process.argv[2];
if (!dir || dir.startsWith('--')) throw new Error('usage: index-follow DIR [--reps N] [--young MB]');
const REPS = arg('reps', 8);
const YOUNG = arg('young', 8);
const ids = readdirSync(dir).filter((n) => n.endsWith('.meta.json')).map((n) => n.slice(0, -'.meta.json'.length));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
for (const id of ids) {
  const meta = JSON.parse(readFileSync(`${dir}/${id}.meta.json`, 'utf8')) as { format: string; bytes?: number };
  const w = new Worker(new URL('./index-follow-worker.mjs', import.meta.url), { workerData: { dir, id, reps: REPS }, ...(YOUNG > 0 ? { resourceLimits: { maxYoungGenerationSizeMb: YOUNG } } : {}) });
  const { thread, all } = await new Promise<{ thread: number[]; all: number[] }>((res, rej) => { w.once('message', res); w.once('error', rej); });
  await w.terminate();
  // The first reading compiles the code: left out of the medians.
  console.log(`${id} (${meta.format}, ${((meta.bytes ?? 0) / 1048576).toFixed(1)} MiB): worker thread ms median ${median(thread.slice(1)).toFixed(1)} (${thread.map((t) => t.toFixed(0)).join(' ')}); whole process ${median(all.slice(1)).toFixed(1)} (${all.map((t) => t.toFixed(0)).join(' ')}); young ${YOUNG || 'default'}; load ${loadavg()[0]!.toFixed(1)}`);
}
