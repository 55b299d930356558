/**
 * What the search-index worker thread (recorder/index/index-worker.ts) costs inside `pam serve`,
 * thread by thread, from /proc/PID/task/TID/{stat,io}: the worker is the thread at nice 19.
 *   - pgbench -S -M simple -c --clients over persistent connections: TPS, CPU µs per
 *     transaction of the whole process, of its main thread and of the index worker, the
 *     worker's share of the process, and its write syscalls per second (`syscw`: SQLite's
 *     pwrite64 to the WAL and the file; it calls nothing else that writes);
 *   - `ssh HOST cat FILE` (no pty: a raw recording) of --mb MiB from /dev/urandom (binary):
 *     MB/s, CPU ms per MiB of the process and of the worker.
 * With `--base DIR` a second `pam serve` runs DIR/bin/pam.js (another build, e.g. main before a
 * change) over the same sshd and PostgreSQL, alternated run by run (the order flips every
 * round), so a neighbour's load hits both alike. Both are built with `npm run build` first.
 *
 *   node bin/run-ts.js bench/index-worker.ts [--seconds 5] [--rounds 2] [--clients 8] [--mb 50] [--base DIR] [--strace]
 *
 * --strace: in the first round's pgbench run, `strace -c` on the worker thread alone (its
 * syscall counts; that run's CPU figures are then not comparable and are left out).
 *
 * Needs PostgreSQL on 127.0.0.1:5432 (trust for postgres), pgbench, sshd, sshpass.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSshd } from '../test/helpers/sshd.js';
import type { PamProcess } from '../test/helpers/pam-process.js';
import { sshCat as sshCatFile, startGrantedPam } from './granted-pam.js';

const exec = promisify(execFile);
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const baseIdx = process.argv.indexOf('--base');
const BASE = baseIdx > 0 ? process.argv[baseIdx + 1] : undefined;
const ROUNDS = arg('rounds', 2);
const SECONDS = arg('seconds', 5);
const CLIENTS = arg('clients', 8);
const MB = arg('mb', 50);
const STRACE = process.argv.includes('--strace');
const DB = `pam_ixworker_${process.pid}`;
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const load = () => loadavg()[0]!.toFixed(1);
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]! : NaN);
const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qAtc', sql]).toString();

interface Threads { all: number; main: number; worker: number; workerWrites: number; workerWritten: number }

/** CPU ms of the process, its main thread and its nice-19 thread(s); the worker's write syscalls and bytes. */
async function threads(pid: number): Promise<Threads> {
  const r: Threads = { all: 0, main: 0, worker: 0, workerWrites: 0, workerWritten: 0 };
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch { continue; /* ended meanwhile */ }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(f[11]) + Number(f[12])) * TICK_MS;
    r.all += cpu;
    if (Number(tid) === pid) r.main += cpu;
    if (Number(f[16]) === 19) {
      r.worker += cpu;
      const io = await readFile(`/proc/${pid}/task/${tid}/io`, 'utf8').catch(() => '');
      r.workerWrites += Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0);
      r.workerWritten += Number(/wchar: (\d+)/.exec(io)?.[1] ?? 0);
    }
  }
  return r;
}
const minus = (a: Threads, b: Threads): Threads => ({
  all: a.all - b.all, main: a.main - b.main, worker: a.worker - b.worker, workerWrites: a.workerWrites - b.workerWrites, workerWritten: a.workerWritten - b.workerWritten,
});

const sshd = await startSshd();
const file = join(sshd.dir, 'bulk.bin');
execFileSync('sh', ['-c', `head -c ${MB * 1024 * 1024} /dev/urandom > ${file}`]);
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
psqlAdmin(`CREATE DATABASE ${DB}`);
await exec('pgbench', ['-h', '127.0.0.1', '-U', 'postgres', '-i', '-s', '5', '-q', DB]);

interface Proxy { name: string; p: PamProcess; token: string }

async function proxy(name: string, entry?: string): Promise<Proxy> {
  const { p, token } = await startGrantedPam({ sshd, db: DB, ...(entry ? { entry } : {}) });
  return { name, p, token };
}

async function pgbench(px: Proxy, seconds: number): Promise<number> {
  const { stdout } = await exec('pgbench', [`host=127.0.0.1 port=${px.p.ports.pg} dbname=${DB} user=postgres`, '-n', '-S', '-M', 'simple', '-c', String(CLIENTS), '-j', '2', '-T', String(seconds)], {
    env: { ...process.env, PGPASSWORD: px.token }, timeout: (seconds + 120) * 1000, maxBuffer: 1 << 24,
  });
  const m = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (!m) throw new Error(`no transaction count:\n${stdout}`);
  return Number(m[1]);
}

const sshCat = (px: Proxy) => sshCatFile(px.p.ports.ssh, px.token, file);

/** The nice-19 threads: their ids and names. */
async function workerThreads(pid: number): Promise<{ tid: string; comm: string }[]> {
  const out: { tid: string; comm: string }[] = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[16]) === 19) out.push({ tid, comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
  }
  return out;
}

/** `strace -c` on the worker thread(s) while `fn` runs; prints the summary. */
async function straced<T>(px: Proxy, fn: () => Promise<T>): Promise<T> {
  const ws = await workerThreads(px.p.proc.pid!);
  const st = spawn('strace', ['-c', '-e', 'trace=pwrite64,pwritev,write,writev,fsync,fdatasync,pread64,read', ...ws.flatMap((w) => ['-p', w.tid])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let out = '';
  st.stderr.on('data', (d: Buffer) => (out += d));
  await new Promise((r) => setTimeout(r, 300));
  const v = await fn();
  st.kill('SIGINT');
  await new Promise((r) => st.once('close', r));
  process.stderr.write(`${px.name}: strace -c of nice-19 threads ${ws.map((w) => `${w.tid} (${w.comm})`).join(', ')} over pgbench -T ${SECONDS}:\n${out}\n`);
  return v;
}

/** The run plus 1.5 s for the worker to read what the run left (its tick is 500 ms). */
async function measured<T>(px: Proxy, fn: () => Promise<T>): Promise<{ v: T; d: Threads }> {
  const pid = px.p.proc.pid!;
  const t0 = await threads(pid);
  const v = await fn();
  await new Promise((r) => setTimeout(r, 1500));
  return { v, d: minus(await threads(pid), t0) };
}

type Row = Record<'tps' | 'cpuTx' | 'mainTx' | 'workerTx' | 'share' | 'writesPerS' | 'mbps' | 'cpuMiB' | 'workerMiB', number[]>;
const newRow = (): Row => ({ tps: [], cpuTx: [], mainTx: [], workerTx: [], share: [], writesPerS: [], mbps: [], cpuMiB: [], workerMiB: [] });

const procs = [await proxy('this tree'), ...(BASE ? [await proxy(`base ${BASE}`, join(BASE, 'bin/pam.js'))] : [])];
const rows = new Map(procs.map((p) => [p.name, newRow()]));
const loads = [load()];
for (const px of procs) {
  await pgbench(px, 2); // warm-up: JIT, the policy's first statements
  await sshCat(px);
}
for (let round = 0; round < ROUNDS; round++) {
  for (const px of round % 2 ? [...procs].reverse() : procs) {
    const r = rows.get(px.name)!;
    if (STRACE && round === 0) await straced(px, () => pgbench(px, SECONDS));
    const pg = await measured(px, () => pgbench(px, SECONDS));
    const tx = pg.v;
    r.tps.push(tx / SECONDS);
    r.cpuTx.push((pg.d.all * 1000) / tx);
    r.mainTx.push((pg.d.main * 1000) / tx);
    r.workerTx.push((pg.d.worker * 1000) / tx);
    r.share.push((100 * pg.d.worker) / pg.d.all);
    r.writesPerS.push(pg.d.workerWrites / SECONDS);
    const ssh = await measured(px, () => sshCat(px));
    r.mbps.push(MB / ssh.v);
    r.cpuMiB.push(ssh.d.all / MB);
    r.workerMiB.push(ssh.d.worker / MB);
    process.stderr.write(`${px.name} round ${round + 1}: ${(tx / SECONDS).toFixed(0)} tps, worker ${r.share.at(-1)!.toFixed(1)}% of the process, ${r.writesPerS.at(-1)!.toFixed(0)} writes/s; ssh ${r.mbps.at(-1)!.toFixed(0)} MB/s, worker ${r.workerMiB.at(-1)!.toFixed(2)} ms/MiB; load ${load()}\n`);
  }
  loads.push(load());
}

console.log(`index-worker: pgbench -S -M simple -c ${CLIENTS} -j 2 -T ${SECONDS} (scale 5); ssh cat of ${MB} MiB /dev/urandom (raw recording); ${ROUNDS} rounds${BASE ? ', alternated' : ''}; CPU over the run + 1.5 s; ${execFileSync('nproc').toString().trim()} cores`);
console.log(`load average (1 min) before and after each round: ${loads.join(' ')}`);
console.log('| pam serve | TPS | CPU µs/tx | main thread µs/tx | index worker µs/tx | worker % of process | worker write syscalls/s | ssh binary MB/s | CPU ms/MiB | worker ms/MiB |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [name, r] of rows) {
  const m = (xs: number[], d: number) => `${median(xs).toFixed(d)}`;
  console.log(`| ${name} | ${m(r.tps, 0)} | ${m(r.cpuTx, 1)} | ${m(r.mainTx, 1)} | ${m(r.workerTx, 1)} | ${m(r.share, 1)} | ${m(r.writesPerS, 0)} | ${m(r.mbps, 0)} | ${m(r.cpuMiB, 2)} | ${m(r.workerMiB, 3)} |`);
}
console.log(JSON.stringify({ rows: Object.fromEntries(rows), loads }));
for (const px of procs) await px.p.stop();
await sshd.close();
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
