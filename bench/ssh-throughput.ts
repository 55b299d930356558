/**
 * Bulk download through the SSH broker (recording on) against the same straight to sshd, in
 * one run: `ssh HOST cat FILE > /dev/null` with the OpenSSH client, FILE being base64 text.
 * Also samples this process's RSS (the broker runs in-process) during the proxied transfers and
 * its CPU time per proxied MiB (user + system), which varies less than MB/s when the machine's
 * cores are shared with other work. `ratio` compares the best of each; `ratioMedianOfRuns` is the
 * median of the per-run ratios (each run: direct, then proxied, back to back).
 *
 *   node bin/run-ts.js bench/ssh-throughput.ts [--mb 200] [--runs 3]
 *
 * Profiling aid: the broker runs in this process (so its RSS and CPU are this process's). The
 * product figure, per kind of data and against `pam serve` as its own process, is
 * bench/ssh-data-kinds.ts.
 */
import { spawn, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { OPENSSH_OPTS } from '../test/helpers/sshd.js';
import { startSshBench } from './ssh-bench-setup.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MB = arg('mb', 200);
const RUNS = arg('runs', 3);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e9) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

const { sshd, cp, broker, token } = await startSshBench();
const file = join(sshd.dir, 'bulk.txt');
execFileSync('sh', ['-c', `head -c ${Math.round((MB * 1024 * 1024 * 3) / 4)} /dev/urandom | base64 > ${file}`]);
const bytes = Number(execFileSync('stat', ['-c', '%s', file]).toString());

const directArgs = ['-i', join(sshd.dir, 'id_ed25519'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-p', String(sshd.port), 'root@127.0.0.1', `cat ${file}`];
const proxyArgs = ['-P', 'IAM token', '-e', 'ssh', ...OPENSSH_OPTS, '-o', 'LogLevel=ERROR', '-o', `Port=${broker.port}`, '-o', 'User=root@bench', '127.0.0.1', `cat ${file}`];

const sealed = async () => (await cp.deps.recordings.list()).filter((m) => m.status === 'ended' && m.sha256).length;
const baseRss = process.memoryUsage().rss;
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
const direct: number[] = [];
const proxied: number[] = [];
/** CPU time of this process (broker + control plane) per proxied MiB: steadier than MB/s on a shared machine. */
const cpuMsPerMB: number[] = [];
const sysMsPerMB: number[] = [];
for (let i = 0; i < RUNS; i++) {
  direct.push(await run('ssh', directArgs));
  const cpu = process.cpuUsage();
  proxied.push(await run('sshpass', proxyArgs, { ...process.env, SSHPASS: token }));
  // The CPU time includes sealing the recording (its SHA-256 is computed at close).
  for (let t = 0; t < 100 && (await sealed()) <= i; t++) await new Promise((r) => setTimeout(r, 50));
  const used = process.cpuUsage(cpu);
  cpuMsPerMB.push((used.user + used.system) / 1000 / (bytes / 1024 / 1024));
  sysMsPerMB.push(used.system / 1000 / (bytes / 1024 / 1024));
}
clearInterval(sampler);
const best = (xs: number[]) => Math.min(...xs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const mbps = (s: number) => bytes / 1024 / 1024 / s;
const rec = (await cp.deps.recordings.list()).find((m) => m.status === 'ended');
console.log(JSON.stringify({
  bytes,
  runs: RUNS,
  directMBps: +mbps(best(direct)).toFixed(1),
  proxyMBps: +mbps(best(proxied)).toFixed(1),
  ratio: +(best(direct) / best(proxied)).toFixed(2),
  /** Each run's direct and proxied transfers ran back to back: the median of their ratios. */
  ratioMedianOfRuns: +median(direct.map((d, i) => d / proxied[i]!)).toFixed(2),
  directSeconds: direct.map((s) => +s.toFixed(2)),
  proxySeconds: proxied.map((s) => +s.toFixed(2)),
  proxyCpuMsPerMB: cpuMsPerMB.map((x) => +x.toFixed(2)),
  ofWhichSystemMsPerMB: sysMsPerMB.map((x) => +x.toFixed(2)),
  baseRssMB: Math.round(baseRss / 1024 / 1024),
  peakRssMB: Math.round(peakRss / 1024 / 1024),
  recordingBytes: rec?.bytes,
}, null, 1));
await broker.close();
await cp.close();
await rm(file, { force: true });
await sshd.close();
