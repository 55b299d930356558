/**
 * Postgres through the product as shipped: `pam serve` started as its own process from a YAML
 * config (recording on, the baseline SQL policy of examples/policies loaded), beside pgbouncer
 * 1.18 (session mode) and direct PostgreSQL, in one run, paths interleaved per round:
 *   - pgbench -S over persistent connections, simple and extended protocol: TPS and each
 *     process's CPU per transaction (user + system from /proc/PID/stat of pam serve and of
 *     pgbouncer; the direct path has no middle process);
 *   - pgbench -C (a new connection per transaction): new sessions per second.
 * For pam serve the CPU of its main thread (the event loop: both brokers' relay, policy,
 * recording) is given apart from the whole process's, whose other threads are chiefly the
 * search index worker (recorder/index), libuv's thread pool and V8's GC helpers.
 * bench/pg-pgbench.ts runs the broker inside the benchmark's own process: a profiling aid only.
 *
 *   node bin/run-ts.js bench/pg-serve.ts [--seconds 8] [--clients 8] [--rounds 2] [--modes simple,extended] [--no-sessions]
 *       [--paths direct,pgbouncer,pam] [--cpu-prof DIR] [--node-args "--perf-basic-prof …"] [--extra-config FILE] [--compare DIR]
 *       [--rate N] [--sslmode disable|require]
 *
 * --paths runs only some paths (e.g. `--paths pam` to profile); --cpu-prof DIR starts pam serve
 * with `node --cpu-prof --cpu-prof-dir DIR` (the .cpuprofile is written when it stops);
 * --extra-config FILE appends YAML lines to pam serve's config (e.g. the upstream pool).
 * --compare DIR also starts `pam serve` from another checkout DIR (run `npm run build` there; its
 * node_modules are used), as one more path alternated with this checkout's: an A/B of two builds.
 * --rate N runs the new sessions at N per second (pgbench -R) instead of as fast as they go: on
 * a loaded machine the figure to compare is then the CPU per session, which the rate keeps from
 * being inflated by a saturated process. Wake-ups per tx are the voluntary context switches of
 * all of a process's threads (each a sleep and a wake: the event loop, the thread pool, workers).
 *
 * --sslmode require: the clients of pam serve use TLS (what psql's and most drivers' default
 * `prefer` gets from it); direct and pgbouncer stay plain.
 *
 * Needs PostgreSQL on 127.0.0.1:5432 (trust for postgres), pgbench, pgbouncer, runuser, root.
 */
import { execFile, execFileSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { copyFile, chmod, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startPamProcess } from '../test/helpers/pam-process.js';
import { startPgbouncer } from './pgbouncer-setup.js';

const exec = promisify(execFile);
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const list = (name: string, def: string[]) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]!.split(',').filter(Boolean) : def;
};
const SECONDS = arg('seconds', 8);
const CLIENTS = arg('clients', 8);
const ROUNDS = arg('rounds', 2);
const MODES = list('modes', ['simple', 'extended']);
const SESSIONS = !process.argv.includes('--no-sessions');
const PATHS = list('paths', ['direct', 'pgbouncer', 'pam']);
const CPU_PROF = list('cpu-prof', [])[0];
const EXTRA_CONFIG = list('extra-config', [])[0];
const COMPARE = list('compare', [])[0];
const RATE = arg('rate', 0);
/** sslmode of the clients to pam serve (`require`: TLS, as psql's default `prefer` gets from it); direct and pgbouncer stay plain. */
const SSLMODE = list('sslmode', ['disable'])[0]!;
const NODE_ARGS = list('node-args', []).flatMap((a) => a.split(' ')).filter(Boolean);
const DB = `pam_pgserve_${process.pid}`;
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** user+system CPU ms of a process, from /proc/PID/stat (fields 14 and 15). */
async function cpuMs(pid: number, tid?: number): Promise<number> {
  const stat = await readFile(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/** Times the process's threads were woken (voluntary context switches, all threads), from each /proc/PID/task/TID/status. */
async function wakeups(pid: number): Promise<number> {
  let n = 0;
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const status = await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8').catch(() => '');
    n += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return n;
}

let probes = 0;
/**
 * CPU µs to create one small file in `dir`, over 100 (kept, not deleted: a deletion is what makes
 * the next creations slow). On this VM's ext4 without a journal a creation scans past every inode
 * of its block group freed in the last minutes (`recently_deleted`): right after a large `rm -rf`
 * it costs 300-700 µs instead of 30-90, and a proxied session creates two files (its catalog entry
 * and its recording) on the thread pool, where perf found that scan to be 40% of pam serve's CPU
 * in a -C run. Printed beside each new-sessions round so such a round can be told apart.
 */
function fileCreateUs(dir: string): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < 100; i++) {
    const fd = openSync(join(dir, `.create-probe-${probes++}`), 'wx');
    writeSync(fd, 'x'.repeat(100));
    closeSync(fd);
  }
  const u = process.cpuUsage(t0);
  return (u.user + u.system) / 100;
}

async function pgbench(conninfo: string, args: string[], password?: string): Promise<{ tps: number; tx: number }> {
  const { stdout } = await exec('pgbench', [conninfo, '-n', ...args], {
    env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) }, timeout: (SECONDS + 60) * 1000, maxBuffer: 1 << 24,
  });
  const m = /tps = ([\d.]+) \((?:without|excluding) initial connection/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`no tps in pgbench output:\n${stdout}`);
  return { tps: Number(m[1]), tx: Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1] ?? NaN) };
}

const ROLES = `roles:
  - name: bench
    groups: [bench]
    can_request: [{ targets: ["*"], logins: ["*"], max_duration: 8h }]
  - name: boss
    groups: [boss]
    can_approve: [bench]
`;

const work = await mkdtemp(join(tmpdir(), 'pam-pgserve-'));
await chmod(work, 0o755);
execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qc', `DROP DATABASE IF EXISTS ${DB}`, '-c', `CREATE DATABASE ${DB}`]);
await exec('pgbench', ['-h', '127.0.0.1', '-U', 'postgres', '-i', '-s', '10', '-q', DB]);
const startPam = async (root?: string) => {
  const p = await startPamProcess({
    roles: ROLES,
    entry: root ? join(root, 'bin/pam.js') : undefined,
    nodeArgs: [...NODE_ARGS, ...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [])],
    extra: `targets:
  - name: ${DB}
    protocol: postgres
    address: "127.0.0.1:5432"
    database: ${DB}
    tls: disable
    logins: { postgres: { secret: pg } }
${EXTRA_CONFIG ? await readFile(EXTRA_CONFIG, 'utf8') : ''}`,
  });
  await copyFile('examples/policies/postgres-baseline.yaml', join(p.dir, 'policies', 'postgres-baseline.yaml'));
  return p;
};
const pam = await startPam();
// --compare DIR: a second `pam serve` from another checkout (built there), alternated with this one.
const other = COMPARE ? await startPam(COMPARE) : undefined;
await new Promise((r) => setTimeout(r, 1500)); // the policy watcher picks the file up
await mkdir(join(work, 'bouncer'));
const bouncer = PATHS.includes('pgbouncer') ? await startPgbouncer(join(work, 'bouncer'), DB) : { port: 0, pid: 0, stop: () => undefined };
try {
  /** A bench token with an approved grant on one `pam serve`. */
  const grantOn = async (p: typeof pam) => {
    const token = (await p.pam(['dev', 'token', 'bench', '--groups', 'bench', '--ttl', '8h'])).stdout.trim();
    const boss = (await p.pam(['dev', 'token', 'boss', '--groups', 'boss'])).stdout.trim();
    await p.pam(['secret', 'set', 'pg'], {}, 'unused-trust\n');
    const req = await p.pam(['request', '--target', DB, '--login', 'postgres', '--duration', '4h', '--reason', 'bench', '--json'], { PAM_TOKEN: token });
    await p.pam(['approve', JSON.parse(req.stdout).id], { PAM_TOKEN: boss });
    return token;
  };
  const token = await grantOn(pam);
  const otherToken = other ? await grantOn(other) : undefined;
  const allPaths = [
    { name: 'direct', conn: `host=127.0.0.1 port=5432 user=postgres dbname=${DB} sslmode=disable`, pid: undefined as number | undefined, pw: undefined as string | undefined, recordings: undefined as string | undefined },
    { name: 'pgbouncer (session)', conn: `host=127.0.0.1 port=${bouncer.port} user=postgres dbname=${DB} sslmode=disable`, pid: bouncer.pid, pw: undefined, recordings: undefined },
    { name: 'pam serve (recording + policy)', conn: `host=127.0.0.1 port=${pam.ports.pg} user=postgres dbname=${DB} sslmode=${SSLMODE}`, pid: pam.proc.pid, pw: token, recordings: join(pam.dir, 'data', 'recordings') },
    ...(other ? [{ name: `pam serve from ${COMPARE}`, conn: `host=127.0.0.1 port=${other.ports.pg} user=postgres dbname=${DB} sslmode=${SSLMODE}`, pid: other.proc.pid, pw: otherToken, recordings: join(other.dir, 'data', 'recordings') }] : []),
  ];
  const paths = allPaths.filter((p) => PATHS.some((k) => p.name.startsWith(k)));
  const rows: { path: string; mode: string; tps: number[]; cpu: number[]; main: number[]; wakes: number[] }[] = [];
  const load0 = loadavg()[0]!;
  for (const mode of [...MODES, ...(SESSIONS ? ['new sessions'] : [])]) {
    const byPath = new Map(paths.map((p) => [p.name, { path: p.name, mode, tps: [] as number[], cpu: [] as number[], main: [] as number[], wakes: [] as number[] }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const p of round % 2 ? [...paths].reverse() : paths) {
        const args = mode === 'new sessions'
          ? ['-S', '-C', '-c', '8', '-j', '8', '-T', String(Math.max(3, SECONDS / 2)), ...(RATE ? ['-R', String(RATE)] : [])]
          : ['-S', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), '-M', mode];
        if (mode !== 'new sessions') await pgbench(p.conn, ['-S', '-c', String(CLIENTS), '-j', '2', '-T', '2', '-M', mode], p.pw).catch(() => undefined); // warm-up
        const probe = mode === 'new sessions' && p.recordings ? `, file creation ${fileCreateUs(p.recordings).toFixed(0)} µs CPU` : '';
        const c0 = p.pid ? await cpuMs(p.pid) : 0;
        const m0 = p.pid ? await cpuMs(p.pid, p.pid) : 0; // the main (event loop) thread alone
        const w0 = p.pid ? await wakeups(p.pid) : 0;
        const r = await pgbench(p.conn, args, p.pw);
        const c1 = p.pid ? await cpuMs(p.pid) : 0;
        const m1 = p.pid ? await cpuMs(p.pid, p.pid) : 0;
        const w1 = p.pid ? await wakeups(p.pid) : 0;
        const row = byPath.get(p.name)!;
        row.tps.push(r.tps);
        if (p.pid) row.cpu.push(((c1 - c0) * 1000) / r.tx);
        if (p.pid) row.main.push(((m1 - m0) * 1000) / r.tx);
        if (p.pid) row.wakes.push((w1 - w0) / r.tx);
        console.error(`${p.name.padEnd(34)} ${mode.padEnd(13)} round ${round + 1}: ${r.tps.toFixed(0)} tps${p.pid ? `, ${(((c1 - c0) * 1000) / r.tx).toFixed(1)} µs CPU/tx (main ${(((m1 - m0) * 1000) / r.tx).toFixed(1)})` : ''}${probe}, load ${loadavg()[0]!.toFixed(1)}`);
      }
    }
    rows.push(...byPath.values());
  }
  const tpsOf = (mode: string, path: string) => {
    const row = rows.find((r) => r.mode === mode && r.path.startsWith(path));
    return row ? median(row.tps) : NaN;
  };
  const bouncerTps = (mode: string) => tpsOf(mode, 'pgbouncer');
  const directTps = (mode: string) => tpsOf(mode, 'direct');
  console.log(`\npgbench -S -c ${CLIENTS} -j 2 -T ${SECONDS}, ${ROUNDS} interleaved rounds (medians); new sessions: -C -c 8 -j 8; load average ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}\n`);
  console.log('| path | mode | TPS | × direct | × pgbouncer | CPU µs per tx (its process) | of which the main thread | thread wake-ups per tx | rounds |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) {
    const t = median(r.tps);
    console.log(`| ${r.path} | ${r.mode} | ${t.toFixed(0)} | ${(t / directTps(r.mode)).toFixed(2)} | ${(t / bouncerTps(r.mode)).toFixed(2)} | ${r.cpu.length ? median(r.cpu).toFixed(1) : ''} | ${r.path.startsWith('pam') && r.main.length ? median(r.main).toFixed(1) : ''} | ${r.wakes.length ? median(r.wakes).toFixed(1) : ''} | ${r.tps.map((x) => x.toFixed(0)).join(' / ')} |`);
  }
} finally {
  bouncer.stop();
  await pam.stop();
  await other?.stop();
  execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qc', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`]);
  await rm(work, { recursive: true, force: true });
}
