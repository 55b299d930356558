/**
 * SSH throughput per kind of data, through `pam serve` started as its own process from a YAML
 * config (the product as users run it, recording on) and straight to the same sshd, alternating
 * direct and proxied runs. Kinds: text (base64), zeros, random bytes (`ssh host cat FILE`),
 * rsync (upload of the random file), tar (`tar c | ssh host 'cat > /dev/null'`), scp (download).
 *
 * CPU per MiB: the broker is the pam process (utime + stime from /proc/PID/stat, sealing
 * included: the run ends when its recording is sealed). The direct path's is the OpenSSH client
 * (GNU time around ssh) plus sshd (the listener's cutime + cstime, which collects each
 * connection's sshd and the command it ran on the target when they exit).
 *
 *   node bin/run-ts.js bench/ssh-data-kinds.ts [--mb 100] [--runs 3] [--kinds text,zeros,random,rsync,tar,scp] [--cpu-prof DIR] [--proxy-only]
 *
 * --cpu-prof DIR: the pam process runs with `node --cpu-prof` and writes its profile to DIR at exit
 * (profiling aid: the figures of such a run are not comparable). --proxy-only skips the direct runs.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { OPENSSH_OPTS } from '../test/helpers/sshd.js';
import { startServeBench } from './ssh-serve-setup.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const MB = Number(arg('mb', '100'));
const RUNS = Number(arg('runs', '3'));
const KINDS = arg('kinds', 'text,zeros,random,rsync,tar,scp').split(',');
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100;

const PROF = arg('cpu-prof', '');
const PROXY_ONLY = process.argv.includes('--proxy-only');
const { sshd, pam, token } = await startServeBench(PROF ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', PROF] } : {});

const work = join(sshd.dir, 'bench');
await mkdir(join(work, 'tree'), { recursive: true });
const bytes = MB * 1024 * 1024;
const files = {
  text: join(work, 'text.txt'),
  zeros: join(work, 'zeros.bin'),
  random: join(work, 'tree', 'random.bin'),
};
execFileSync('sh', ['-c', `head -c ${Math.round((bytes * 3) / 4)} /dev/urandom | base64 -w 76 > ${files.text}`]);
execFileSync('sh', ['-c', `head -c ${bytes} /dev/zero > ${files.zeros}`]);
execFileSync('sh', ['-c', `head -c ${bytes} /dev/urandom > ${files.random}`]);

// One ssh wrapper per path, so rsync -e, scp -S and pipes all run the same client the same way.
const cpuFile = join(work, 'ssh-cpu.txt');
const direct = join(work, 'direct-ssh');
const proxied = join(work, 'proxied-ssh');
const q = (xs: string[]) => xs.map((x) => `'${x.replace(/'/g, "'\\''")}'`).join(' ');
await writeFile(direct, `#!/bin/sh\nexec /usr/bin/time -f "%U %S" -a -o ${cpuFile} ssh -i ${join(sshd.dir, 'id_ed25519')} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o User=root -p ${sshd.port} "$@"\n`);
await writeFile(proxied, `#!/bin/sh\nexec sshpass -P 'IAM token' -e ssh ${q(OPENSSH_OPTS)} -o LogLevel=ERROR -o User=root@bench -p ${pam.ports.ssh} "$@"\n`);
await chmod(direct, 0o755);
await chmod(proxied, 0o755);

const dest = join(work, 'dest');
const commands: Record<string, (ssh: string) => string> = {
  text: (ssh) => `${ssh} 127.0.0.1 cat ${files.text} > /dev/null`,
  zeros: (ssh) => `${ssh} 127.0.0.1 cat ${files.zeros} > /dev/null`,
  random: (ssh) => `${ssh} 127.0.0.1 cat ${files.random} > /dev/null`,
  rsync: (ssh) => `rm -rf ${dest} && rsync -a -e ${ssh} ${files.random} 127.0.0.1:${dest}/`,
  tar: (ssh) => `tar -C ${join(work, 'tree')} -c . | ${ssh} 127.0.0.1 'cat > /dev/null'`,
  scp: (ssh) => `scp -q -S ${ssh} 127.0.0.1:${files.random} ${join(work, 'scp-copy.bin')} && rm -f ${join(work, 'scp-copy.bin')}`,
};

const procTimes = async (pid: number, children = false) => {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  // fields after "(comm) ": state=0 … utime=11 stime=12 cutime=13 cstime=14
  const ticks = children ? Number(f[13]) + Number(f[14]) : Number(f[11]) + Number(f[12]);
  return (ticks / TICK) * 1000;
};
const sshdPid = Number((await readFile(join(sshd.dir, 'sshd.pid'), 'utf8')).trim());
const recDir = join(pam.dir, 'data', 'recordings');
const sealed = async () => {
  let n = 0;
  for (const f of await readdir(recDir).catch(() => [] as string[])) {
    if (!f.endsWith('.meta.json')) continue;
    try {
      if (JSON.parse(await readFile(join(recDir, f), 'utf8')).status !== 'live') n++;
    } catch { /* being rewritten */ }
  }
  return n;
};
const sshCpu = async () => {
  const text = await readFile(cpuFile, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => /^[0-9.]+ [0-9.]+$/.test(l)).reduce((a, l) => a + l.split(' ').map(Number).reduce((x, y) => x + y, 0) * 1000, 0);
};

function run(cmd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn('sh', ['-c', cmd], { env: { ...process.env, SSHPASS: token }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e9) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const mib = bytes / 1024 / 1024;
const results: Record<string, unknown>[] = [];
const load0 = loadavg();
for (const kind of KINDS) {
  const d: number[] = [];
  const p: number[] = [];
  const dCpu: number[] = [];
  const pCpu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (!PROXY_ONLY) {
      const s0 = await sshCpu();
      const sd0 = await procTimes(sshdPid, true);
      d.push(await run(commands[kind]!(direct)));
      await new Promise((r) => setTimeout(r, 200)); // the connection's sshd exits and is reaped
      dCpu.push(((await sshCpu()) - s0 + (await procTimes(sshdPid, true)) - sd0) / mib);
    } else {
      d.push(NaN);
      dCpu.push(NaN);
    }

    const before = await sealed();
    const b0 = await procTimes(pam.proc.pid!);
    p.push(await run(commands[kind]!(proxied)));
    for (let t = 0; t < 200 && (await sealed()) <= before; t++) await new Promise((r) => setTimeout(r, 25));
    pCpu.push(((await procTimes(pam.proc.pid!)) - b0) / mib);
  }
  const ratios = d.map((x, i) => x / p[i]!);
  const row = {
    kind,
    directMBps: +(mib / median(d)).toFixed(1),
    proxyMBps: +(mib / median(p)).toFixed(1),
    ratioMedianOfRuns: +median(ratios).toFixed(2),
    ratios: ratios.map((r) => +r.toFixed(2)),
    brokerCpuMsPerMiB: +median(pCpu).toFixed(2),
    directSshPlusSshdCpuMsPerMiB: +median(dCpu).toFixed(2),
    cpuRatio: +(median(pCpu) / median(dCpu)).toFixed(2),
  };
  results.push(row);
  console.error(JSON.stringify(row));
}
let recBytes = 0;
for (const f of await readdir(recDir)) if (f.endsWith('.meta.json')) recBytes += JSON.parse(await readFile(join(recDir, f), 'utf8')).bytes ?? 0;
console.log(JSON.stringify({
  mib, runs: RUNS, cores: cpus().length, loadavgBefore: load0.map((x) => +x.toFixed(2)), loadavgAfter: loadavg().map((x) => +x.toFixed(2)),
  results, recordingBytesAll: recBytes,
}, null, 1));
await pam.stop();
await rm(work, { recursive: true, force: true });
await sshd.close();
