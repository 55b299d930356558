/**
 * PROFILING AID (the broker runs inside this benchmark's process, not as users run it: see
 * bench/pg-serve.ts for the shipped process). Postgres broker benchmark: pgbench select-only through the proxy (recording on) against the
 * same load direct and through pgbouncer (session mode), in one run; then new authenticated
 * sessions per second (token check, grant check, upstream SCRAM-SHA-256 login).
 *
 *   node bin/run-ts.js bench/pg-pgbench.ts [--seconds 8] [--clients 8] [--threads 2]
 *       [--rounds 1] [--paths direct,pgbouncer,pipe,bare,policy,tls] [--modes simple,extended] [--no-sessions]
 *
 * With --rounds N the paths run in turn N times (interleaved, so a noisy neighbour hits every
 * path alike) and the table shows the median and each round.
 *
 * Needs: PostgreSQL on 127.0.0.1:5432 (trust for postgres), pgbench, pgbouncer, runuser, and
 * root (pgbouncer and the private SCRAM cluster run as user postgres).
 */
import { execFile } from 'node:child_process';
import { appendFile, chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startControlPlane } from '../test/helpers/control-plane.js';
import { startPostgresBroker } from '../proxy/postgres/server.js';
import { startPgbouncer } from './pgbouncer-setup.js';

const exec = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 8);
const CLIENTS = arg('clients', 8);
const THREADS = arg('threads', 2);
const DB = 'pgw_bench';
const ROUNDS = arg('rounds', 1);
const list = (name: string, def: string[]) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]!.split(',') : def;
};
const PATHS = list('paths', ['direct', 'pgbouncer', 'pipe', 'bare', 'policy', 'tls']);
const MODES = list('modes', ['simple', 'extended']);
const SESSIONS = !process.argv.includes('--no-sessions');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function pgbench(conninfo: string, args: string[], password?: string): Promise<number> {
  return (await pgbenchRun(conninfo, args, password)).tps;
}

/** TPS, transactions, and this process's CPU time (the in-process proxy's) over the run. */
async function pgbenchRun(conninfo: string, args: string[], password?: string): Promise<{ tps: number; tx: number; cpuUs: number }> {
  const cpu0 = process.cpuUsage();
  const { stdout } = await exec('pgbench', [conninfo, ...args], { env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) }, timeout: (SECONDS + 60) * 1000, maxBuffer: 1 << 24 });
  const m = /tps = ([\d.]+) \((?:without|excluding) initial connection/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`no tps in pgbench output:\n${stdout}`);
  const cpu = process.cpuUsage(cpu0);
  const tx = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1] ?? NaN);
  return { tps: Number(m[1]), tx, cpuUs: cpu.user + cpu.system };
}

/** A private cluster that asks for SCRAM-SHA-256 on TCP (the machine's one trusts loopback). */
async function startScramCluster(dir: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const data = join(dir, 'data');
  const asPg = (cmd: string, args: string[]) => exec('runuser', ['-u', 'postgres', '--', join(BIN, cmd), ...args], { timeout: 60_000 });
  await exec('chown', ['postgres:postgres', dir]);
  await asPg('initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync']);
  await appendFile(join(data, 'postgresql.conf'), `port = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nfsync = off\nmax_connections = 100\n`);
  await asPg('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', 'start']);
  await asPg('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-c', "SET password_encryption='scram-sha-256'; CREATE ROLE bench LOGIN PASSWORD 'bench-pw'", '-c', 'CREATE DATABASE bench OWNER bench']);
  return { port, stop: async () => void (await asPg('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => {})) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-'));
  await chmod(dir, 0o755);
  const results: { path: string; mode: string; tps: number; rounds?: number[]; cpuPerTx?: number }[] = [];
  let bouncer: { stop(): void } | undefined;
  let scram: { port: number; stop: () => Promise<void> } | undefined;
  // The SCRAM cluster starts first: targets are fixed when the control plane (and its policy) loads.
  await mkdir(join(dir, 'scram'));
  scram = await startScramCluster(join(dir, 'scram'));
  const cp = await startControlPlane({
    targets: [
      { name: 'scram', protocol: 'postgres', host: '127.0.0.1', port: scram.port, database: 'bench', tls: 'disable', logins: { bench: { secret: 'bench-pw' } }, defaultAction: 'allow' },
      { name: 'bench', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: DB, tls: 'disable', logins: { postgres: { secret: 'pg' } }, defaultAction: 'allow' },
    ],
  });
  try {
    await exec('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS ${DB}`, '-c', `CREATE DATABASE ${DB}`]);
    await exec('pgbench', ['-h', '127.0.0.1', '-U', 'postgres', '-i', '-s', '10', '-q', DB]);
    await cp.setSecret('pg', 'unused-trust');
    const broker = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
    // The same proxy without the policy engine, to separate relay+recording from SQL policy cost.
    const bare = await startPostgresBroker({ ...cp.deps, policy: undefined }, { host: '127.0.0.1', port: 0 });
    await cp.grant('bench-user', 'bench', 'postgres');
    const token = await cp.token('bench-user');
    await mkdir(join(dir, 'bouncer'));
    const b = await startPgbouncer(join(dir, 'bouncer'), DB);
    bouncer = b;
    // Reference: a bare Node.js TCP pipe (no parsing, no auth, no recording): the runtime's ceiling.
    const pipe = createServer({ noDelay: true }, (c) => {
      const u = connect({ host: '127.0.0.1', port: 5432, noDelay: true });
      c.on('data', (d) => { if (!u.write(d)) { c.pause(); u.once('drain', () => c.resume()); } });
      u.on('data', (d) => { if (!c.write(d)) { u.pause(); c.once('drain', () => u.resume()); } });
      c.on('close', () => u.destroy());
      u.on('close', () => c.destroy());
      c.on('error', () => {});
      u.on('error', () => {});
    });
    await new Promise<void>((r) => pipe.listen(0, '127.0.0.1', () => r()));
    const pipePort = (pipe.address() as { port: number }).port;
    const load = ['-S', '-c', String(CLIENTS), '-j', String(THREADS), '-T', String(SECONDS), '-n'];
    const paths = [
      { key: 'direct', path: 'direct', conn: `host=127.0.0.1 port=5432 user=postgres dbname=${DB} sslmode=disable` },
      { key: 'pgbouncer', path: 'pgbouncer (session)', conn: `host=127.0.0.1 port=${b.port} user=postgres dbname=${DB} sslmode=disable` },
      { key: 'pipe', path: 'bare Node.js TCP pipe (reference)', conn: `host=127.0.0.1 port=${pipePort} user=postgres dbname=${DB} sslmode=disable` },
      { key: 'bare', path: 'pam proxy (recording, no policy)', conn: `host=127.0.0.1 port=${bare.port} user=postgres dbname=bench sslmode=disable`, pw: token },
      { key: 'policy', path: 'pam proxy (recording + policy engine)', conn: `host=127.0.0.1 port=${broker.port} user=postgres dbname=bench sslmode=disable`, pw: token },
      { key: 'tls', path: 'pam proxy (recording + policy), TLS', conn: `host=127.0.0.1 port=${broker.port} user=postgres dbname=bench sslmode=require`, pw: token },
    ].filter((p) => PATHS.includes(p.key));
    for (const mode of MODES) {
      const per = new Map<string, number[]>(paths.map((p) => [p.path, []]));
      const cpu = new Map<string, { us: number; tx: number }>(paths.map((p) => [p.path, { us: 0, tx: 0 }]));
      for (let round = 0; round < ROUNDS; round++) {
        // Every other round in reverse order, so no path always runs right after another.
        for (const p of round % 2 ? [...paths].reverse() : paths) {
          // Warm-up (JIT, caches, pool) so every path is measured hot, as a long-running proxy is.
          // On a loaded machine 2 s may not even see the connections open: that is not an error.
          await pgbench(p.conn, ['-S', '-c', String(CLIENTS), '-j', String(THREADS), '-T', '2', '-n', '-M', mode], p.pw).catch(() => 0);
          const r = await pgbenchRun(p.conn, [...load, '-M', mode], p.pw);
          per.get(p.path)!.push(r.tps);
          const c = cpu.get(p.path)!;
          c.us += r.cpuUs;
          c.tx += r.tx;
          console.error(`${p.path.padEnd(40)} ${mode.padEnd(9)} round ${round + 1} ${r.tps.toFixed(0)} tps, proxy CPU ${(r.cpuUs / r.tx).toFixed(1)} µs/tx`);
        }
      }
      for (const p of paths) results.push({ path: p.path, mode, tps: median(per.get(p.path)!), rounds: per.get(p.path), cpuPerTx: p.path.startsWith('pam proxy') ? cpu.get(p.path)!.us / cpu.get(p.path)!.tx : undefined });
    }

    // New authenticated sessions per second: pgbench -C opens a connection per transaction. Its
    // connects block their thread, so one thread per client, else pgbench itself is the limit.
    await cp.setSecret('bench-pw', 'bench-pw');
    await cp.grant('bench-user', 'scram', 'bench');
    const conn = ['-S', '-C', '-c', '16', '-j', '16', '-T', String(Math.max(3, Math.round(SECONDS / 2))), '-n', '-f', join(dir, 'select1.sql')];
    await writeFile(join(dir, 'select1.sql'), 'select 1;\n');
    const sessions = [
      { path: 'direct (trust upstream)', conn: `host=127.0.0.1 port=5432 user=postgres dbname=${DB} sslmode=disable`, pw: undefined },
      { path: 'pam proxy (token+grant, trust upstream)', conn: `host=127.0.0.1 port=${broker.port} user=postgres dbname=bench sslmode=disable`, pw: token },
      { path: 'direct (SCRAM)', conn: `host=127.0.0.1 port=${scram.port} user=bench dbname=bench sslmode=disable`, pw: 'bench-pw' },
      { path: 'pam proxy (token+grant+SCRAM, rec+policy)', conn: `host=127.0.0.1 port=${broker.port} user=bench dbname=scram sslmode=disable`, pw: token },
      { path: 'pam proxy, TLS client leg', conn: `host=127.0.0.1 port=${broker.port} user=bench dbname=scram sslmode=require`, pw: token },
    ];
    for (const s of SESSIONS ? sessions : []) {
      const tps = await pgbench(s.conn, conn.filter((a) => a !== '-S'), s.pw);
      results.push({ path: s.path, mode: 'new sessions/s', tps });
      console.error(`${s.path.padEnd(40)} new sessions/s ${tps.toFixed(0)}`);
    }
    await broker.close();
    await bare.close();
    pipe.close();
  } finally {
    bouncer?.stop();
    await scram?.stop();
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  }
  const direct = (mode: string) => results.find((r) => r.path === 'direct' && r.mode === mode)?.tps ?? NaN;
  const bouncerTps = (mode: string) => results.find((r) => r.path.startsWith('pgbouncer') && r.mode === mode)?.tps ?? NaN;
  console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}; pgbench ${load()}\n`);
  const bareTps = (mode: string) => results.find((r) => r.path === 'pam proxy (recording, no policy)' && r.mode === mode)?.tps ?? NaN;
  console.log(`| path | mode | TPS${ROUNDS > 1 ? ' (median)' : ''} | × direct | × pgbouncer | × proxy without policy | proxy CPU µs/tx |${ROUNDS > 1 ? ' rounds |' : ''}`);
  console.log(`|---|---|---:|---:|---:|---:|---:|${ROUNDS > 1 ? '---|' : ''}`);
  for (const r of results) {
    const isSess = r.mode === 'new sessions/s';
    const x = (d: number) => (isSess ? '' : (r.tps / d).toFixed(2));
    const rounds = ROUNDS > 1 ? ` ${(r.rounds ?? []).map((t) => t.toFixed(0)).join(' / ')} |` : '';
    console.log(`| ${r.path} | ${r.mode} | ${r.tps.toFixed(0)} | ${x(direct(r.mode))} | ${x(bouncerTps(r.mode))} | ${r.path.startsWith('pam proxy') ? x(bareTps(r.mode)) : ''} | ${r.cpuPerTx !== undefined ? r.cpuPerTx.toFixed(1) : ''} |${rounds}`);
  }
  function load() {
    return `-S -c ${CLIENTS} -j ${THREADS} -T ${SECONDS}${ROUNDS > 1 ? `, ${ROUNDS} interleaved rounds` : ''}`;
  }
}

await main();
