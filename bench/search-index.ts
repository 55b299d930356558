/**
 * Search and sessions list at scale, against the scan they replace, in one run.
 *
 * 1. Writes N synthetic recordings in the real formats (bench/search-index-setup.ts).
 * 2. The old way (`--scan`): what the UI's search route did before the index (scan every
 *    recording for the word, recorder/search.ts) and its sessions list (read every catalog
 *    entry, then each listed recording's denials).
 * 3. `pam index rebuild` as its own process: wall time, CPU (from /proc: the child's utime +
 *    stime) and the index file's size.
 * 4. `pam serve` as its own process from a YAML config over the same data_dir: time until its
 *    start-up check of the index against the folder is done, then over HTTP, 20 times each: a
 *    rare word, a common word (first page), the first page of sessions, "who ran systemctl stop
 *    on prod-* in the last 7 days" (command events), and the second page of the common word.
 * 5. Start-up with the index gone (`--startup`, on by default): `pam serve` stopped, the index
 *    file deleted, `pam serve` started again. Time until /healthz answers, then while the index
 *    is rebuilt in the background the first page of sessions and the rare word are asked every
 *    second (the proxy serves meanwhile: each answer's latency and the index state it reports),
 *    and the time until the index is ready again.
 *
 *   node bin/run-ts.js bench/search-index.ts --recordings 2000 --kb 250 --scan
 *   node bin/run-ts.js bench/search-index.ts --recordings 100000 --kb 16
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMON_WORD, generate, RARE_WORD } from './search-index-setup.js';
import { RecordingCatalog } from '../recorder/catalog.js';
import { searchRecording, type SearchHit } from '../recorder/search.js';
import { castIndex } from '../recorder/cast-reader.js';
import { statementRows } from '../recorder/query-log-reader.js';
import { ReaderCache } from '../recorder/reader-cache.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('recordings', 2000);
const KB = arg('kb', 250);
const RUNS = arg('runs', 20);
const SCAN = process.argv.includes('--scan');
const KEEP = process.argv.includes('--keep');
const STARTUP = !process.argv.includes('--no-startup');

const root = mkdtempSync(join(tmpdir(), 'pam-bench-index-'));
const dataDir = join(root, 'data');
const recDir = join(dataDir, 'recordings');
const out: Record<string, unknown> = { recordings: N, kbEach: KB, cores: Number(execFileSync('nproc').toString()), loadAtStart: loadavg().map((x) => +x.toFixed(1)) };

let t = performance.now();
const set = generate(recDir, N, KB, 365);
out.generatedMB = +(set.bytes / 1048576).toFixed(0);
out.generateSeconds = +((performance.now() - t) / 1000).toFixed(1);

if (SCAN) {
  // The routes as they were before the index (replay-ui/server/ui-recordings.ts at 243e4d4).
  const cat = await RecordingCatalog.open(recDir);
  const scan = async (q: string) => {
    const t0 = performance.now();
    const hits: SearchHit[] = [];
    for (const m of await cat.list()) {
      hits.push(...(await searchRecording(m, cat.dataPath(m.id, m.format), q, Math.min(20, 200 - hits.length))));
      if (hits.length >= 200) break;
    }
    return { seconds: +((performance.now() - t0) / 1000).toFixed(2), hits: hits.length };
  };
  out.scanRare = await scan(RARE_WORD);
  out.scanCommon = await scan(COMMON_WORD);
  const t0 = performance.now();
  const cache = new ReaderCache();
  let listed = 0;
  for (const m of await cat.list()) {
    const p = cat.dataPath(m.id, m.format);
    if (m.format === 'asciicast') await castIndex(p, cache);
    else await statementRows(p, cache);
    if (++listed >= 1000) break;
  }
  out.scanSessionsSeconds = +((performance.now() - t0) / 1000).toFixed(2);
}

/** Children's CPU seconds so far (utime + stime of waited-for children, /proc/self/stat). */
function childCpu(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});
const port = await freePort();
const policies = join(root, 'policies');
mkdirSync(policies);
writeFileSync(join(policies, 'roles.yaml'), 'roles:\n  - name: security\n    groups: [security]\n    can_audit: true\n');
const cfg = join(root, 'pam.yaml');
writeFileSync(cfg, `listen: { http: "127.0.0.1:${port}" }\ndata_dir: "${dataDir}"\nstore: embedded\npolicies_dir: "${policies}"\nidentity: { dev: true, audience: "pam-proxy" }\ntargets: []\n`);

const pam = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
  const p = spawn('node', ['bin/pam.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => (stderr += d));
  p.once('close', (code) => resolve({ code, stdout, stderr }));
});

let cpu0 = childCpu();
t = performance.now();
const rebuild = await pam(['index', 'rebuild', '--config', cfg, '--json']);
if (rebuild.code !== 0) throw new Error(`pam index rebuild: ${rebuild.stderr}`);
out.rebuild = {
  seconds: +((performance.now() - t) / 1000).toFixed(1), cpuSeconds: +(childCpu() - cpu0).toFixed(1),
  indexMB: +(statSync(join(dataDir, 'index.sqlite')).size / 1048576).toFixed(0),
};

const base = `http://127.0.0.1:${port}`;
let token = '';
const get = async (path: string) => {
  const res = await fetch(base + path, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json() as Promise<Record<string, any>>;
};

/** Starts `pam serve`; resolves with the process and the seconds until /healthz answered. */
async function startServe() {
  const proc = spawn('node', ['bin/pam.js', 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Never leave the proxy behind, whatever fails below.
  process.once('exit', () => proc.kill('SIGKILL'));
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const t0 = performance.now();
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break;
    if (proc.exitCode !== null || i > 6000) throw new Error(`pam serve did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { proc, healthzSeconds: +((performance.now() - t0) / 1000).toFixed(1) };
}
const stopServe = async (proc: ReturnType<typeof spawn>) => {
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('close', r));
};

t = performance.now();
let { proc: serve, healthzSeconds } = await startServe();
out.serveHealthzSeconds = healthzSeconds;
token = (await pam(['dev', 'token', 'sam', '--groups', 'security', '--config', cfg])).stdout.trim();
for (;;) {
  const s = await get('/api/v1/ui/sessions?limit=1');
  if (s.index.state === 'ready') break;
  await new Promise((r) => setTimeout(r, 100));
}
out.serveStartToIndexReadySeconds = +((performance.now() - t) / 1000).toFixed(1);

const time = async (path: string, check: (r: Record<string, any>) => unknown) => {
  const ms: number[] = [];
  let last: Record<string, any> = {};
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    last = await get(path);
    ms.push(performance.now() - t0);
  }
  const ok = check(last);
  if (!ok) throw new Error(`${path}: unexpected answer ${JSON.stringify(last).slice(0, 300)}`);
  const sorted = [...ms].sort((a, b) => a - b);
  return { firstMs: +ms[0]!.toFixed(1), medianMs: +sorted[Math.floor(sorted.length / 2)]!.toFixed(1), maxMs: +sorted.at(-1)!.toFixed(1) };
};
out.rare = await time(`/api/v1/search?q=${RARE_WORD}`, (r) => r.hits.length === 1 && r.hits[0].recording === set.rareRecording);
out.common = await time(`/api/v1/search?q=${COMMON_WORD}`, (r) => r.hits.length === 50 && r.next_cursor);
const firstPage = await get(`/api/v1/search?q=${COMMON_WORD}`);
out.commonPage2 = await time(`/api/v1/search?q=${COMMON_WORD}&cursor=${firstPage.next_cursor}`, (r) => r.hits.length === 50);
out.sessionsFirstPage = await time('/api/v1/ui/sessions', (r) => r.sessions.length === 100);
out.whoRanSystemctlStop = await time(`/api/v1/search?${new URLSearchParams({ q: 'systemctl stop', kind: 'command', target: 'prod-*', since: '7d' })}`, (r) => r.hits.length > 0 && r.hits.every((h: any) => h.command.text.includes('systemctl stop')));
out.deniedLastWeekByUser = await time(`/api/v1/search?${new URLSearchParams({ user: 'u7', verdict: 'deny', since: '7d' })}`, (r) => Array.isArray(r.hits));

await stopServe(serve);

if (STARTUP) {
  // The index gone at start-up: the proxy serves at once and rebuilds in the background.
  for (const f of ['index.sqlite', 'index.sqlite-wal', 'index.sqlite-shm']) rmSync(join(dataDir, f), { force: true });
  t = performance.now();
  ({ proc: serve, healthzSeconds } = await startServe());
  const during: { sessionsMs: number[]; rareMs: number[]; states: string[] } = { sessionsMs: [], rareMs: [], states: [] };
  let readyAfter = 0;
  for (;;) {
    let t0 = performance.now();
    const s = await get('/api/v1/ui/sessions?limit=100');
    const sessionsMs = performance.now() - t0;
    if (s.index.state === 'ready') {
      readyAfter = (performance.now() - t) / 1000;
      break;
    }
    during.sessionsMs.push(sessionsMs);
    during.states.push(`${s.index.state} ${s.index.done}/${s.index.total}`);
    t0 = performance.now();
    await get(`/api/v1/search?q=${RARE_WORD}`);
    during.rareMs.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const med = (xs: number[]) => (xs.length ? +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1) : null);
  out.startupWithoutIndex = {
    healthzSeconds, indexReadySeconds: +readyAfter.toFixed(1), answersWhileBuilding: during.sessionsMs.length,
    sessionsPageMsWhileBuilding: { median: med(during.sessionsMs), max: during.sessionsMs.length ? +Math.max(...during.sessionsMs).toFixed(1) : null },
    rareWordMsWhileBuilding: { median: med(during.rareMs), max: during.rareMs.length ? +Math.max(...during.rareMs).toFixed(1) : null },
    firstState: during.states[0] ?? null, lastState: during.states.at(-1) ?? null,
  };
  out.afterStartupRebuild = {
    rare: await time(`/api/v1/search?q=${RARE_WORD}`, (r) => r.hits.length === 1 && r.hits[0].recording === set.rareRecording),
    sessionsFirstPage: await time('/api/v1/ui/sessions', (r) => r.sessions.length === 100),
  };
  await stopServe(serve);
}
out.loadAtEnd = loadavg().map((x) => +x.toFixed(1));
console.log(JSON.stringify(out, null, 1));
if (KEEP) console.error(`kept ${root}`);
else rmSync(root, { recursive: true, force: true });
