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
 *     [--alt OTHER_CHECKOUT/bin/pam.js] [--index off|both] [--node-args '--perf-basic-prof …'] [--prewarm MIB] [--warm MIB]
 *
 * --cpu-prof DIR: the pam process runs with `node --cpu-prof` and writes its profile to DIR at exit
 * (profiling aid: the figures of such a run are not comparable). --proxy-only skips the direct runs.
 * --alt: a second `pam serve` from another checkout (built with `npm run build`), run right after
 * this one's on each round (the order turned around every round), for an A/B in one run. --index off: the brokers run with
 * `index: { enabled: false }`; both: one broker with the index and one without.
 *
 * --prewarm MIB: before the runs, write a file of that size next to the recordings and delete it,
 * so the page cache the recordings land in is memory the machine has used before. In this VM the
 * first write into memory never touched since boot costs about 3 ms of system CPU per MiB
 * (`dd` of 200 MiB: 0.65 s; into freed pages again: 0.05 s). It helps only for a while: the VM
 * hands freed memory back to its host (virtio-balloon free page reporting, DAMON), and a new
 * file written 20 s after another was deleted paid 2.8 ms/MiB again (0.26 right after, 0.12 into
 * cached pages), so a run of minutes pays it for most of its recording (BENCHMARKS.md, stop 15).
 *
 * --warm MIB: each broker first relays that much once, unmeasured (V8 compiles the hot path in
 * its first transfers; a proxy that has run a while has done so).
 *
 * The broker's CPU is also split by thread (/proc/PID/task/TID/stat): the main thread, the index
 * worker (the thread at nice 19) and the rest (V8's GC and compiler threads, libuv's pool).
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
const ALT = arg('alt', '');
const INDEX = arg('index', 'on');
const noIndex = 'index: { enabled: false }';
const nodeArgs = [...(PROF ? ['--cpu-prof', '--cpu-prof-dir', PROF] : []), ...arg('node-args', '').split(' ').filter(Boolean)];
const first = await startServeBench({ ...(nodeArgs.length ? { nodeArgs } : {}), ...(INDEX === 'off' ? { extra: noIndex } : {}) });
const { sshd } = first;
/** The brokers compared, each run on every round in this order. */
const brokers = [{ name: INDEX === 'off' ? 'this, index off' : 'this', ...first }];
if (ALT) brokers.push({ name: `alt ${ALT}`, ...(await startServeBench({ sshd, entry: ALT, ...(INDEX === 'off' ? { extra: noIndex } : {}) })) });
if (INDEX === 'both') brokers.push({ name: 'this, index off', ...(await startServeBench({ sshd, extra: noIndex })) });

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
const q = (xs: string[]) => xs.map((x) => `'${x.replace(/'/g, "'\\''")}'`).join(' ');
await writeFile(direct, `#!/bin/sh\nexec /usr/bin/time -f "%U %S" -a -o ${cpuFile} ssh -i ${join(sshd.dir, 'id_ed25519')} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o User=root -p ${sshd.port} "$@"\n`);
await chmod(direct, 0o755);
const proxied: string[] = [];
for (const [i, b] of brokers.entries()) {
  const f = join(work, `proxied-ssh-${i}`);
  await writeFile(f, `#!/bin/sh\nSSHPASS='${b.token}' exec sshpass -P 'IAM token' -e ssh ${q(OPENSSH_OPTS)} -o LogLevel=ERROR -o User=root@bench -p ${b.pam.ports.ssh} "$@"\n`);
  await chmod(f, 0o755);
  proxied.push(f);
}

const PREWARM = Number(arg('prewarm', '0'));
if (PREWARM > 0) {
  const f = join(first.pam.dir, 'data', 'prewarm.bin');
  execFileSync('dd', ['if=/dev/zero', `of=${f}`, 'bs=1M', `count=${PREWARM}`], { stdio: 'ignore' });
  await rm(f);
}
console.error(JSON.stringify({ brokers: brokers.map((b) => ({ name: b.name, pid: b.pam.proc.pid })) }));
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
const sealed = async (recDir: string) => {
  let n = 0;
  for (const f of await readdir(recDir).catch(() => [] as string[])) {
    if (!f.endsWith('.meta.json')) continue;
    try {
      if (JSON.parse(await readFile(join(recDir, f), 'utf8')).status !== 'live') n++;
    } catch { /* being rewritten */ }
  }
  return n;
};
/** The process's CPU (ms) by thread: main (tid = pid), index (the nice-19 worker), the rest. */
const threadTimes = async (pid: number) => {
  const total = await procTimes(pid);
  let main = 0;
  let index = 0;
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const st = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    if (!st) continue;
    const f = st.split(') ')[1]!.split(' ');
    const ms = ((Number(f[11]) + Number(f[12])) / TICK) * 1000;
    if (Number(tid) === pid) main += ms;
    else if (Number(f[16]) === 19) index += ms; // fields after "(comm) ": nice=16
  }
  return { total, main, index, other: total - main - index };
};
type Split = Awaited<ReturnType<typeof threadTimes>>;
const minus = (a: Split, b: Split): Split => ({ total: a.total - b.total, main: a.main - b.main, index: a.index - b.index, other: a.other - b.other });
/** Waits until the index worker has caught up (its CPU still for 1.5 s, at most 30 s). */
const settled = async (pid: number) => {
  let last = await threadTimes(pid);
  for (let still = 0, t = 0; still < 3 && t < 60; t++) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await threadTimes(pid);
    still = now.index - last.index <= 1000 / TICK ? still + 1 : 0;
    last = now;
  }
  return last;
};
const sshCpu = async () => {
  const text = await readFile(cpuFile, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => /^[0-9.]+ [0-9.]+$/.test(l)).reduce((a, l) => a + l.split(' ').map(Number).reduce((x, y) => x + y, 0) * 1000, 0);
};

function run(cmd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e9) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const mib = bytes / 1024 / 1024;
const results: Record<string, unknown>[] = [];
const load0 = loadavg();
const fix = (x: number, n = 2) => +x.toFixed(n);
// --warm N: each broker first carries N MiB of the random file once, unmeasured (JIT warm-up, as in a long-running proxy).
const WARM = Number(arg('warm', '0'));
if (WARM > 0) for (const p of proxied) await run(`${p} 127.0.0.1 head -c ${WARM * 1024 * 1024} ${files.random} > /dev/null`);
for (const kind of KINDS) {
  const d: number[] = [];
  const dCpu: number[] = [];
  const per = brokers.map(() => ({ t: [] as number[], cpu: [] as number[], split: [] as Split[] }));
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
    // Each round turns the order of the brokers around, so neither always runs first after the direct run.
    const order = [...brokers.keys()];
    if (i % 2) order.reverse();
    for (const j of order) {
      const b = brokers[j]!;
      const pid = b.pam.proc.pid!;
      const recDir = join(b.pam.dir, 'data', 'recordings');
      const before = await sealed(recDir);
      const t0 = await threadTimes(pid);
      per[j]!.t.push(await run(commands[kind]!(proxied[j]!)));
      for (let t = 0; t < 200 && (await sealed(recDir)) <= before; t++) await new Promise((r) => setTimeout(r, 25));
      per[j]!.cpu.push(((await procTimes(pid)) - t0.total) / mib);
      per[j]!.split.push(minus(await settled(pid), t0));
    }
  }
  for (const [j, b] of brokers.entries()) {
    const { t, cpu, split } = per[j]!;
    const ratios = d.map((x, i) => x / t[i]!);
    const med = (k: keyof Split) => fix(median(split.map((s) => s[k] / mib)));
    const row = {
      kind,
      broker: b.name,
      directMBps: fix(mib / median(d), 1),
      proxyMBps: fix(mib / median(t), 1),
      ratioMedianOfRuns: fix(median(ratios)),
      ratios: ratios.map((r) => fix(r)),
      brokerCpuMsPerMiB: fix(median(cpu)),
      directSshPlusSshdCpuMsPerMiB: fix(median(dCpu)),
      cpuRatio: fix(median(cpu) / median(dCpu)),
      // Until the index worker is idle again: what the broker spends in all, per thread.
      settledMsPerMiB: { total: med('total'), main: med('main'), index: med('index'), other: med('other') },
      load: loadavg().map((x) => fix(x)),
    };
    results.push(row);
    console.error(JSON.stringify(row));
  }
}
let recBytes = 0;
for (const b of brokers) {
  const recDir = join(b.pam.dir, 'data', 'recordings');
  for (const f of await readdir(recDir)) if (f.endsWith('.meta.json')) recBytes += JSON.parse(await readFile(join(recDir, f), 'utf8')).bytes ?? 0;
}
console.log(JSON.stringify({
  mib, runs: RUNS, cores: cpus().length, loadavgBefore: load0.map((x) => +x.toFixed(2)), loadavgAfter: loadavg().map((x) => +x.toFixed(2)),
  results, recordingBytesAll: recBytes,
}, null, 1));
for (const b of brokers) await b.pam.stop();
await rm(work, { recursive: true, force: true });
await sshd.close();
