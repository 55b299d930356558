/**
 * What the search index costs per MiB of SSH text, thread by thread (issue 13: the proxy's CPU
 * per MiB of text with the index on should stay near its CPU with it off). Two `pam serve` from
 * YAML over the same sshd, index on and `index: { enabled: false }`, plus with `--base DIR` a
 * third with the index on from another built checkout (DIR/bin/pam.js, e.g. main before a
 * change); run after run alternately (the order flips every round). Each run is `ssh HOST cat
 * FILE` of --mb MiB of base64 text with the OpenSSH client, without a pty (a raw recording) or
 * with `--pty` (a terminal recording, asciicast), and 1.5 s after it for the worker to catch up.
 *
 * CPU is each thread's run time from /proc/PID/task/TID/schedstat (nanoseconds: /proc/.../stat
 * counts 10 ms ticks, which at ~10 ms/MiB hid differences of a tenth), in groups: the main thread,
 * the index worker (the thread at nice 19), Node's platform threads (the five it starts first:
 * V8's GC helpers, concurrent marking and compilation, shared by every isolate of the process)
 * and the rest (the libuv pool and others). `--node --trace-gc` shows which isolate collects. Figures: ms per MiB, median over rounds and each round.
 *
 *   npm run bench index-threads -- [--mb 30] [--rounds 6] [--pty] [--base DIR] [--node "--trace-gc"]
 *
 * `--node` passes Node options to the `pam serve` processes (not to the CLI calls). Needs sshd,
 * sshpass and PostgreSQL on 127.0.0.1:5432 (the granted setup has a Postgres target too).
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { startSshd } from '../test/helpers/sshd.js';
import { bulkBase64File, sshCat, startGrantedPam, type GrantedPam } from './granted-pam.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const MB = Number(arg('mb') ?? 30);
const ROUNDS = Number(arg('rounds') ?? 6);
const PTY = process.argv.includes('--pty');
const BASE = arg('base');
const NODE_ARGS = arg('node')?.split(' ').filter(Boolean) ?? [];
const DB = `pam_ixthreads_${process.pid}`;
const GROUPS = ['main', 'index worker', 'V8 platform', 'other'] as const;
type Group = (typeof GROUPS)[number];
const load = () => loadavg()[0]!.toFixed(1);
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]! : NaN);
const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qAtc', sql]).toString();

/** Run time in ms of each group of the process's threads. */
async function threads(pid: number): Promise<Record<Group, number>> {
  const r: Record<Group, number> = { main: 0, 'index worker': 0, 'V8 platform': 0, other: 0 };
  // By rank, not by id minus pid: ids come from the machine-wide pid space, so other processes'
  // ids fall between a process's threads. The five after main are Node's platform (its delayed
  // task scheduler and four workers), started before anything else.
  const tids = (await readdir(`/proc/${pid}/task`)).map(Number).sort((a, b) => a - b);
  for (const [rank, tid] of tids.entries()) {
    const [stat, sched] = await Promise.all([readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'), readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')]).catch(() => ['', '']);
    if (!stat) continue; // ended meanwhile
    const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    const g: Group = tid === pid ? 'main' : nice === 19 ? 'index worker' : rank <= 5 ? 'V8 platform' : 'other';
    r[g] += Number(sched.split(' ')[0]) / 1e6;
  }
  return r;
}

const sshd = await startSshd();
const { file, mib } = bulkBase64File(sshd.dir, MB);
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
psqlAdmin(`CREATE DATABASE ${DB}`);
const cat = (g: GrantedPam) => sshCat(g.p.ports.ssh, g.token, file, { pty: PTY });

const procs: { name: string; g: GrantedPam }[] = [
  { name: 'index on', g: await startGrantedPam({ sshd, db: DB, nodeArgs: NODE_ARGS }) },
  { name: 'index off', g: await startGrantedPam({ sshd, db: DB, extra: 'index: { enabled: false }\n', nodeArgs: NODE_ARGS }) },
  ...(BASE ? [{ name: `index on, ${BASE}`, g: await startGrantedPam({ sshd, db: DB, entry: join(BASE, 'bin/pam.js'), nodeArgs: NODE_ARGS }) }] : []),
];
const rows = new Map(procs.map((p) => [p.name, { mbps: [] as number[], all: [] as number[], ...Object.fromEntries(GROUPS.map((g) => [g, [] as number[]])) } as Record<'mbps' | 'all' | Group, number[]>]));
for (const { g } of procs) await cat(g); // warm-up: JIT, the first recording
const loads = [load()];
for (let round = 0; round < ROUNDS; round++) {
  for (const { name, g } of round % 2 ? [...procs].reverse() : procs) {
    const pid = g.p.proc.pid!;
    const before = await threads(pid);
    const s = await cat(g);
    await new Promise((r) => setTimeout(r, 1500));
    const after = await threads(pid);
    const r = rows.get(name)!;
    r.mbps.push(mib / s);
    let all = 0;
    for (const k of GROUPS) {
      r[k].push((after[k] - before[k]) / mib);
      all += after[k] - before[k];
    }
    r.all.push(all / mib);
    process.stderr.write(`${name} round ${round + 1}: ${(mib / s).toFixed(0)} MB/s, ${(all / mib).toFixed(2)} ms/MiB (${GROUPS.map((k) => `${k} ${r[k].at(-1)!.toFixed(2)}`).join(', ')}); load ${load()}\n`);
  }
  loads.push(load());
}

const fmt = (xs: number[], d: number) => `${median(xs).toFixed(d)} (${xs.map((x) => x.toFixed(d)).join(', ')})`;
console.log(`index-threads: ssh cat of ${mib.toFixed(0)} MiB base64 ${PTY ? 'with a pty (asciicast)' : 'without a pty (raw)'}; ${ROUNDS} rounds alternating; CPU ms per MiB from schedstat over the run + 1.5 s; ${execFileSync('nproc').toString().trim()} cores`);
console.log(`load average (1 min) before and after each round: ${loads.join(' ')}`);
console.log(`| pam serve | MB/s | all threads | ${GROUPS.join(' | ')} |`);
console.log(`|---|---|---|${GROUPS.map(() => '---').join('|')}|`);
for (const [name, r] of rows) console.log(`| ${name} | ${fmt(r.mbps, 0)} | ${fmt(r.all, 2)} | ${GROUPS.map((k) => fmt(r[k], 2)).join(' | ')} |`);
for (const { g } of procs) await g.p.stop();
await sshd.close();
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
