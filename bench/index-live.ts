/**
 * What indexing while sessions run costs the sessions: SSH bulk throughput and Postgres pgbench
 * TPS through the brokers (recording on) with the index worker off and on, interleaved run by
 * run so a noisy neighbour hits both alike; and how soon what a session printed is searchable.
 *
 * - ssh: `ssh HOST 'cat FILE; echo PROBE'` (FILE: --mb MiB of base64 text) with the OpenSSH
 *   client. With the index on: MB/s while the transfer runs, then the lag until PROBE (the last
 *   line) is searchable, and the CPU the process spent on it (process.cpuUsage counts the
 *   worker thread).
 * - postgres: pgbench -S (select-only, simple protocol) for --seconds.
 * - interactive: a shell prints a fresh word every second; time until it is searchable.
 *
 * The brokers and the index worker run in this process, as in `pam serve` (LiveIndex is what
 * startProxy starts).
 *
 *   node bin/run-ts.js bench/index-live.ts [--mb 200] [--runs 3] [--seconds 8] [--clients 4]
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Client } from 'ssh2';
import { OPENSSH_OPTS, startSshd } from '../test/helpers/sshd.js';
import { startControlPlane } from '../test/helpers/control-plane.js';
import { startSshBroker } from '../proxy/ssh/server.js';
import { startPostgresBroker } from '../proxy/postgres/server.js';
import { LiveIndex } from '../recorder/index/live-index.js';
import { parseQuery } from '../recorder/index/query-text.js';

const exec = promisify(execFile);
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MB = arg('mb', 200);
const RUNS = arg('runs', 3);
const SECONDS = arg('seconds', 8);
const CLIENTS = arg('clients', 4);
const DB = `pgix_bench_${process.pid}`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const sshd = await startSshd();
execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-qc', `DROP DATABASE IF EXISTS ${DB}`, '-c', `CREATE DATABASE ${DB}`]);
execFileSync('pgbench', ['-h', '127.0.0.1', '-U', 'postgres', '-i', '-q', '-s', '2', DB], { stdio: 'ignore' });
const cp = await startControlPlane({
  targets: [
    { name: 'bench', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'bench-root' } }, defaultAction: 'allow' },
    { name: 'pgb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: DB, tls: 'disable', logins: { postgres: { secret: 'pg-pw' } }, defaultAction: 'allow' },
  ],
});
await cp.setSecret('bench-root', sshd.userKey);
await cp.setSecret('pg-pw', 'unused-with-trust');
const ssh = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
const pgb = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
await cp.grant('bencher', 'bench', 'root');
await cp.grant('bencher', 'pgb', 'postgres');
const token = await cp.token('bencher');
const file = join(sshd.dir, 'bulk.txt');
execFileSync('sh', ['-c', `head -c ${Math.round((MB * 1024 * 1024 * 3) / 4)} /dev/urandom | base64 > ${file}`]);
const bytes = Number(execFileSync('stat', ['-c', '%s', file]).toString());
const mib = bytes / 1048576;

function sshCat(probe: string): Promise<number> {
  const args = ['-P', 'IAM token', '-e', 'ssh', ...OPENSSH_OPTS, '-o', 'LogLevel=ERROR', '-o', `Port=${ssh.port}`, '-o', 'User=root@bench', '127.0.0.1', `cat ${file}; echo ${probe}`];
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn('sshpass', args, { env: { ...process.env, SSHPASS: token }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e9) : reject(new Error(`ssh exited ${code}: ${err}`))));
  });
}

async function pgbench(): Promise<number> {
  const { stdout } = await exec('pgbench', [`host=127.0.0.1 port=${pgb.port} user=postgres dbname=pgb`, '-S', '-n', '-M', 'simple', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS)],
    { env: { ...process.env, PGPASSWORD: token }, timeout: (SECONDS + 60) * 1000 });
  const m = /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`pgbench: ${stdout}`);
  return Number(m[1]);
}

async function startIndex(): Promise<LiveIndex> {
  const index = await LiveIndex.start({ dataDir: cp.dataDir, catalog: cp.deps.recordings });
  while (index.status().state !== 'ready') await new Promise((r) => setTimeout(r, 50));
  return index;
}

async function searchable(index: LiveIndex, word: string): Promise<number> {
  const t0 = performance.now();
  const match = parseQuery(word).match;
  for (;;) {
    if ((await index.search({ match, limit: 1 })).hits.length) return (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const off = { sshSeconds: [] as number[], sshCpuMsPerMiB: [] as number[], tps: [] as number[] };
const on = { sshSeconds: [] as number[], sshCpuMsPerMiB: [] as number[], lagSeconds: [] as number[], indexCpuMsPerMiB: [] as number[], tps: [] as number[] };
for (let run = 0; run < RUNS; run++) {
  let c = process.cpuUsage();
  off.sshSeconds.push(await sshCat(`probeoff${run}`));
  let u = process.cpuUsage(c);
  off.sshCpuMsPerMiB.push((u.user + u.system) / 1000 / mib);
  off.tps.push(await pgbench());

  const index = await startIndex();
  c = process.cpuUsage();
  on.sshSeconds.push(await sshCat(`probeon${run}`));
  u = process.cpuUsage(c);
  on.sshCpuMsPerMiB.push((u.user + u.system) / 1000 / mib);
  c = process.cpuUsage();
  on.lagSeconds.push(await searchable(index, `probeon${run}`));
  u = process.cpuUsage(c);
  on.indexCpuMsPerMiB.push((u.user + u.system) / 1000 / mib);
  on.tps.push(await pgbench());
  await index.close();
}

// Interactive: a word printed in a shell, searchable how soon.
const index = await startIndex();
const client = new Client();
await new Promise<void>((resolve, reject) => {
  client.once('ready', () => resolve());
  client.once('error', reject);
  client.connect({ host: '127.0.0.1', port: ssh.port, username: 'root@bench', password: token, hostVerifier: () => true });
});
const sh = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => client.shell({ term: 'xterm' }, (e, ch) => (e ? reject(e) : resolve(ch))));
let seen = '';
sh.on('data', (d: Buffer) => (seen += d.toString()));
const interactive: number[] = [];
for (let i = 0; i < 10; i++) {
  const word = `typed${process.pid}x${i}`;
  sh.write(`echo ${word.slice(0, 5)}''${word.slice(5)}\r`);
  while (!seen.includes(word)) await new Promise((r) => setTimeout(r, 5));
  interactive.push(await searchable(index, word));
  await new Promise((r) => setTimeout(r, 1000));
}
client.end();
await index.close();

const r2 = (x: number) => +x.toFixed(2);
console.log(JSON.stringify({
  cores: Number(execFileSync('nproc').toString()), mib: r2(mib), runs: RUNS, pgbenchSeconds: SECONDS, clients: CLIENTS,
  sshMBps: { off: r2(mib / median(off.sshSeconds)), on: r2(mib / median(on.sshSeconds)), ratioOnOff: r2(median(off.sshSeconds) / median(on.sshSeconds)) },
  sshSeconds: { off: off.sshSeconds.map(r2), on: on.sshSeconds.map(r2) },
  sshCpuMsPerMiB: { off: off.sshCpuMsPerMiB.map(r2), on: on.sshCpuMsPerMiB.map(r2) },
  bulkIndexLagSeconds: on.lagSeconds.map(r2),
  bulkIndexCpuMsPerMiBAfterTransfer: on.indexCpuMsPerMiB.map(r2),
  pgbenchTps: { off: off.tps.map(Math.round), on: on.tps.map(Math.round), ratioOnOff: r2(median(on.tps) / median(off.tps)) },
  interactiveSearchableSeconds: { median: r2(median(interactive)), max: r2(Math.max(...interactive)), all: interactive.map(r2) },
}, null, 1));
await ssh.close();
await pgb.close();
await cp.close();
await rm(file, { force: true });
await sshd.close();
execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-qc', `DROP DATABASE IF EXISTS ${DB}`]);
