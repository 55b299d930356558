/**
 * What the live search index costs the sessions (issue 15: "indexing keeps up with live sessions
 * (a word printed is searchable within 2 s) without lowering SSH or Postgres throughput by more
 * than 5%"). Two `pam serve` processes from YAML over the same sshd and PostgreSQL, identical
 * but for `index: { enabled: false }` in one; run after run alternately (the order flips every
 * round), so a neighbour's load hits both alike:
 *   - ssh: `ssh HOST cat FILE` (FILE: --mb MiB of base64 text, the index's worst case: every
 *     line a new token) with the OpenSSH client: MB/s, and the pam process's CPU per MiB;
 *   - pgbench -S (select-only, simple protocol, --clients over persistent connections): TPS and
 *     CPU per 1,000 transactions;
 *   - pgbench -S -C (a new proxied session per transaction: a catalog entry, a recording and an
 *     index entry each): TPS and CPU per 1,000 sessions.
 * CPU is user+system of the whole process (the index worker thread included) from
 * /proc/PID/stat, over the run plus --settle seconds after it, the same window for both.
 * Machine CPU: the busy time of all cores (/proc/stat: user, nice, system, irq, softirq; not steal, the hypervisor's)
 * over the same window, above the idle rate measured just before it, per unit: what the client, sshd or PostgreSQL and the proxy together
 * spent. On a machine these runs keep busy, throughput is the cores' time over that, so the
 * on/off ratio of machine CPU per unit says what the index takes from throughput with far less
 * round-to-round swing than the throughput ratios (it is only meaningful with nothing else
 * running: a neighbour's work lands in it).
 * Then, on the index-on process only, the lag until a word echoed in a pty shell is found by
 * GET /api/v1/search, --samples times while idle and as many again while a bulk `cat` runs in
 * another session.
 *
 * Figures: the median of each, and the median of the per-round ratios on/off (each ratio from
 * two runs a few seconds apart), with the load average before, during and after.
 *
 *   npm run bench index-live -- [--rounds 10] [--mb 50] [--seconds 5] [--clients 4] [--samples 10] [--settle 1] [--fresh]
 *
 * --fresh: both processes are started anew for every round. A process keeps the state V8's heap
 * reached (one of two identical processes can run many more mark-compacts than the other for
 * minutes), which otherwise falls on one side of every round; fresh processes spread it over both.
 *
 * Needs PostgreSQL on 127.0.0.1:5432 (trust for postgres), pgbench, sshd, sshpass.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { promisify } from 'node:util';
import { Client, type ClientChannel } from 'ssh2';
import { startSshd } from '../test/helpers/sshd.js';
import type { PamProcess } from '../test/helpers/pam-process.js';
import { bulkBase64File, sshCat as sshCatFile, startGrantedPam } from './granted-pam.js';

const exec = promisify(execFile);
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const ROUNDS = arg('rounds', 10);
const MB = arg('mb', 50);
const SECONDS = arg('seconds', 5);
const CLIENTS = arg('clients', 4);
const SAMPLES = arg('samples', 10);
const SETTLE_MS = arg('settle', 1) * 1000;
const FRESH = process.argv.includes('--fresh');
const DB = `pam_ixbench_${process.pid}`;

const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qAtc', sql]).toString();
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const load = () => loadavg()[0]!.toFixed(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** user+system CPU ms of a process (all its threads), from /proc/PID/stat fields 14 and 15. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

const sshd = await startSshd();
const { file, mib } = bulkBase64File(sshd.dir, MB);
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
psqlAdmin(`CREATE DATABASE ${DB}`);
await exec('pgbench', ['-h', '127.0.0.1', '-U', 'postgres', '-i', '-s', '5', '-q', DB]);

interface Proxy { p: PamProcess; token: string; auditor: string }

const proxy = (index: boolean): Promise<Proxy> => startGrantedPam({ sshd, db: DB, extra: index ? '' : 'index: { enabled: false }\n' });

async function pgbench(port: number, token: string, extra: string[]): Promise<number> {
  const { stdout } = await exec('pgbench', [`host=127.0.0.1 port=${port} dbname=${DB} user=postgres`, '-n', '-S', '-M', 'simple', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), ...extra], {
    env: { ...process.env, PGPASSWORD: token }, timeout: (SECONDS + 120) * 1000, maxBuffer: 1 << 24,
  });
  const m = /tps = ([\d.]+) \((?:without|excluding) initial connection/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`no tps:\n${stdout}`);
  return Number(m[1]);
}

const sshCat = (port: number, token: string) => sshCatFile(port, token, file);

/** Busy CPU ms of all cores since boot, from the `cpu` line of /proc/stat (idle, iowait and steal left out). */
async function machineMs(): Promise<number> {
  const f = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = f as [number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq) * TICK_MS;
}

/**
 * Runs `fn` and returns its result with the process's and the machine's CPU ms over it plus the
 * settle time. The machine's is above its idle rate, taken over the half second before (both
 * proxies idle, whatever else runs): the settle second alone would otherwise add up to 2,000 ms
 * of a neighbour's CPU to a 30 MiB transfer's.
 */
async function withCpu<T>(pid: number, fn: () => Promise<T>): Promise<{ v: T; cpu: number; machine: number }> {
  const i0 = await machineMs();
  const it = performance.now();
  await sleep(500);
  const idleRate = ((await machineMs()) - i0) / (performance.now() - it);
  const c0 = await cpuMs(pid);
  const m0 = await machineMs();
  const t0 = performance.now();
  const v = await fn();
  await sleep(SETTLE_MS);
  const machine = (await machineMs()) - m0 - idleRate * (performance.now() - t0);
  return { v, cpu: (await cpuMs(pid)) - c0, machine };
}

type Row = {
  mbps: number[]; cpuPerMiB: number[]; machinePerMiB: number[]; tps: number[]; cpuPer1kTx: number[]; machinePer1kTx: number[];
  tpsC: number[]; cpuPer1kSessions: number[]; machinePer1kSessions: number[];
};
const row = (): Row => ({ mbps: [], cpuPerMiB: [], machinePerMiB: [], tps: [], cpuPer1kTx: [], machinePer1kTx: [], tpsC: [], cpuPer1kSessions: [], machinePer1kSessions: [] });
const rows = { off: row(), on: row() };
const loads: string[] = [load()];

/**
 * Both processes started and warmed up, not counted: the first sessions compile the code paths
 * (V8 compiles the relay while it runs, on threads that take turns with it on two cores).
 */
async function startBoth(): Promise<{ on: Proxy; off: Proxy }> {
  const both = { on: await proxy(true), off: await proxy(false) };
  for (const { p, token } of [both.on, both.off]) {
    await sshCat(p.ports.ssh, token);
    for (const c of [['-C'], []]) await exec('pgbench', [`host=127.0.0.1 port=${p.ports.pg} dbname=${DB} user=postgres`, '-n', '-S', '-c', '2', '-T', '2', ...c], { env: { ...process.env, PGPASSWORD: token } });
  }
  return both;
}
let procs = await startBoth();
for (let round = 0; round < ROUNDS; round++) {
  if (FRESH && round > 0) {
    await procs.on.p.stop();
    await procs.off.p.stop();
    procs = await startBoth();
  }
  const order = round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
  for (const name of order) {
    const { p, token } = procs[name];
    const pid = p.proc.pid!;
    const r = rows[name];
    const s = await withCpu(pid, () => sshCat(p.ports.ssh, token));
    r.mbps.push(mib / s.v);
    r.cpuPerMiB.push(s.cpu / mib);
    r.machinePerMiB.push(s.machine / mib);
    const t = await withCpu(pid, () => pgbench(p.ports.pg, token, []));
    r.tps.push(t.v);
    r.cpuPer1kTx.push(t.cpu / ((t.v * SECONDS) / 1000));
    r.machinePer1kTx.push(t.machine / ((t.v * SECONDS) / 1000));
    const c = await withCpu(pid, () => pgbench(p.ports.pg, token, ['-C']));
    r.tpsC.push(c.v);
    r.cpuPer1kSessions.push(c.cpu / ((c.v * SECONDS) / 1000));
    r.machinePer1kSessions.push(c.machine / ((c.v * SECONDS) / 1000));
  }
  loads.push(load());
  process.stderr.write(`round ${round + 1}/${ROUNDS} done, load ${load()}\n`);
}

/** Lag from a word shown on the client's screen until the index-on proxy's search API finds it. */
async function searchableLags(px: Proxy, n: number, tag: string): Promise<number[]> {
  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', reject);
    client.connect({ host: '127.0.0.1', port: px.p.ports.ssh, username: 'root@web', password: px.token, hostVerifier: () => true, readyTimeout: 30_000 });
  });
  const sh = await new Promise<ClientChannel>((resolve, reject) => client.shell({ term: 'xterm' }, (e, ch) => (e ? reject(e) : resolve(ch))));
  let seen = '';
  sh.on('data', (d: Buffer) => (seen += d.toString()));
  const lags: number[] = [];
  for (let i = 0; i < n; i++) {
    const word = `${tag}${process.pid}x${i}`;
    // Printed by the shell, not echoed as typed: the word exists only in the output.
    sh.write(`echo ${word.slice(0, 4)}''${word.slice(4)}\r`);
    while (!seen.includes(word)) await sleep(5);
    const t0 = performance.now();
    for (;;) {
      const res = await fetch(`${px.p.server}/api/v1/search?q=${word}&kind=output`, { headers: { authorization: `Bearer ${px.auditor}` } });
      if (res.ok && ((await res.json()) as { hits: unknown[] }).hits.length) break;
      await sleep(20);
    }
    lags.push((performance.now() - t0) / 1000);
    await sleep(500);
  }
  client.end();
  return lags;
}

const idleLags = await searchableLags(procs.on, SAMPLES, 'idle');
let bulkDone = false;
const bulk = (async () => { for (let i = 0; i < 1000 && !bulkDone; i++) await sshCat(procs.on.p.ports.ssh, procs.on.token); })();
await sleep(500);
const busyLoad = load();
const busyLags = await searchableLags(procs.on, SAMPLES, 'busy');
bulkDone = true;
await bulk;
loads.push(load());

const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]! : NaN);
const ratios = (k: keyof Row) => rows.on[k].map((v, i) => v / rows.off[k][i]!);
const fmt = (xs: number[], d: number) => `${median(xs).toFixed(d)} (${xs.map((x) => x.toFixed(d)).join(', ')})`;
console.log(`index-live: ${ROUNDS} rounds alternating; ssh cat of ${mib.toFixed(0)} MiB base64; pgbench -S -M simple -c ${CLIENTS} -T ${SECONDS}, scale 5; CPU over run + ${SETTLE_MS / 1000} s; ${execFileSync('nproc').toString().trim()} cores`);
console.log(`load average (1 min) before, after each round and at the end: ${loads.join(' ')}`);
console.log('| | index off: median (each round) | index on: median (each round) | on/off, median of per-round ratios |');
console.log('|---|---|---|---|');
const lines: [string, keyof Row, number][] = [
  ['SSH MB/s', 'mbps', 1], ['SSH CPU ms / MiB', 'cpuPerMiB', 2], ['SSH machine CPU ms / MiB', 'machinePerMiB', 2],
  ['pgbench TPS', 'tps', 0], ['CPU ms / 1k tx', 'cpuPer1kTx', 1], ['machine CPU ms / 1k tx', 'machinePer1kTx', 1],
  ['pgbench -C TPS (session per tx)', 'tpsC', 0], ['CPU ms / 1k sessions', 'cpuPer1kSessions', 0], ['machine CPU ms / 1k sessions', 'machinePer1kSessions', 0],
];
for (const [label, k, d] of lines) console.log(`| ${label} | ${fmt(rows.off[k], d)} | ${fmt(rows.on[k], d)} | ${median(ratios(k)).toFixed(3)} (${ratios(k).map((x) => x.toFixed(2)).join(', ')}) |`);
const lag = (xs: number[]) => `median ${median(xs).toFixed(2)} s, max ${Math.max(...xs).toFixed(2)} s`;
console.log(`| a word printed, until GET /api/v1/search finds it (idle, ${SAMPLES}) | | ${lag(idleLags)} | |`);
console.log(`| the same while a bulk cat runs in another session (load ${busyLoad}, ${SAMPLES}) | | ${lag(busyLags)} | |`);
console.log(JSON.stringify({ rows, idleLags, busyLags, loads }));
await procs.on.p.stop();
await procs.off.p.stop();
await sshd.close();
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
