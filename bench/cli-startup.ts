/**
 * CLI start-up: `pam --help` and `pam policy test` beside `node -e ''` in the same run, each
 * run N times as its own process, from the compiled dist/ (`npm run build` first; the bench
 * says which code ran) and from the sources (PAM_FROM_SOURCE=1).
 *
 * Reports, per command, the median wall time of a run and the CPU (user + system) per run,
 * taken from the kernel's count of CPU used by this process's waited-for children
 * (/proc/self/stat cutime + cstime), so a busy machine inflates wall time far more than CPU.
 * The targets of issue 19: `pam --help` within 3x and `pam policy test` within 5x of `node -e ''`.
 *
 *   npm run build && npm run bench cli-startup -- --runs 20
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' } } });
const runs = Number(values.runs);
const root = resolve(import.meta.dirname, '..');
const TICK_MS = 10; // USER_HZ is 100 on Linux

function childCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command: state is index 0, so cutime (16) and cstime (17) are at 13 and 14.
  return (Number(f[13]) + Number(f[14])) * TICK_MS;
}

interface Case { name: string; args: string[]; env?: Record<string, string> }
const pam = join(root, 'bin/pam.js');
const policy = ['policy', 'test', '--config', join(root, 'examples/pam.yaml'), '--user', 'dana', '--groups', 'dba', '--target', 'localdb', '--login', 'postgres', '--sql', 'select 1'];
const cases: Case[] = [
  { name: "node -e ''", args: ['-e', ''] },
  { name: 'pam --help (dist)', args: [pam, '--help'] },
  { name: 'pam policy test (dist)', args: [pam, ...policy] },
  { name: 'pam --help (sources)', args: [pam, '--help'], env: { PAM_FROM_SOURCE: '1' } },
  { name: 'pam policy test (sources)', args: [pam, ...policy], env: { PAM_FROM_SOURCE: '1' } },
];

const entry = spawnSync(process.execPath, [pam, '--version'], { encoding: 'utf8' }).stdout.trim();
process.stdout.write(`cli-startup: ${runs} runs each, interleaved; \`pam --version\` says: ${entry}; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
const wall: Record<string, number[]> = {};
const cpu: Record<string, number> = {};
for (let i = 0; i < runs; i++) {
  for (const c of cases) {
    const before = childCpuMs();
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, c.args, { cwd: root, env: { ...process.env, ...c.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0 && !(c.name.startsWith('pam policy') && r.status === 1)) throw new Error(`${c.name} exited ${r.status}: ${r.stderr}`);
    (wall[c.name] ??= []).push(ms);
    cpu[c.name] = (cpu[c.name] ?? 0) + childCpuMs() - before;
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = { wall: median(wall["node -e ''"]!), cpu: cpu["node -e ''"]! / runs };
process.stdout.write(`${'command'.padEnd(28)} ${'wall median'.padStart(12)} ${'x node'.padStart(7)} ${'CPU/run'.padStart(9)} ${'x node'.padStart(7)}\n`);
for (const c of cases) {
  const w = median(wall[c.name]!);
  const u = cpu[c.name]! / runs;
  process.stdout.write(`${c.name.padEnd(28)} ${`${w.toFixed(0)} ms`.padStart(12)} ${(w / base.wall).toFixed(2).padStart(7)} ${`${u.toFixed(0)} ms`.padStart(9)} ${(u / base.cpu).toFixed(2).padStart(7)}\n`);
}
