/**
 * Many concurrent interactive sessions through the SSH broker (recording on) to a real sshd:
 * each is an ssh2 client with a pty shell that, once all shells are up, types a command every
 * second. Reports the
 * broker process's RSS before, with all sessions up, and at peak, so RSS per session =
 * (RSS with sessions − RSS before) / sessions, plus command round-trip latency.
 *
 * The clients run in a child process (this file with `--role clients`), so their memory is not
 * counted as the broker's.
 *
 *   node bin/run-ts.js bench/ssh-concurrency.ts [--sessions 200] [--seconds 15] [--direct]
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const SESSIONS = Number(arg('sessions', '200'));
const SECONDS = Number(arg('seconds', '15'));
/** Logins in flight at once (sshd's MaxStartups in the test helper is 100); each batch waits for its prompts. */
const CONNECT_PARALLEL = 20;

/** Straight to sshd instead of through the broker: the same load, as a reference. */
const DIRECT = process.argv.includes('--direct');

if (arg('role', 'broker') === 'clients') await runClients(Number(arg('port', '0')), process.env.PAM_TOKEN, process.env.PAM_KEY_FILE);
else await runBroker();

async function runBroker(): Promise<void> {
  const { startSshBench } = await import('./ssh-bench-setup.js');
  const { sshd, cp, broker, token } = await startSshBench();

  const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;
  await new Promise((r) => setTimeout(r, 500));
  const before = process.memoryUsage();
  let peak = before.rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  let up: NodeJS.MemoryUsage | undefined;
  let cpuAtUp: NodeJS.CpuUsage | undefined;
  let result: Record<string, unknown> = {};
  const runTs = fileURLToPath(new URL('../bin/run-ts.js', import.meta.url));
  const port = DIRECT ? sshd.port : broker.port;
  const child = spawn(process.execPath, [runTs, fileURLToPath(import.meta.url), '--role', 'clients', '--port', String(port), '--sessions', String(SESSIONS), '--seconds', String(SECONDS)], {
    env: { ...process.env, ...(DIRECT ? { PAM_KEY_FILE: join(sshd.dir, 'id_ed25519') } : { PAM_TOKEN: token }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for await (const line of createInterface({ input: child.stdout! })) {
    const msg = JSON.parse(line) as { up?: number; done?: Record<string, unknown> };
    if (msg.up !== undefined) {
      // All sessions open and typing: let the first commands settle, then sample.
      await new Promise((r) => setTimeout(r, 3000));
      up = process.memoryUsage();
      cpuAtUp = process.cpuUsage();
    }
    if (msg.done) result = msg.done;
  }
  clearInterval(sampler);
  const cpu = cpuAtUp ? process.cpuUsage(cpuAtUp) : undefined;
  const upRss = up?.rss ?? 0;
  console.log(JSON.stringify({
    path: DIRECT ? 'direct' : 'proxy',
    sessions: SESSIONS,
    seconds: SECONDS,
    ...result,
    rssBeforeMB: mb(before.rss),
    rssWithSessionsMB: mb(upRss),
    rssPeakMB: mb(peak),
    heapUsedBeforeMB: mb(before.heapUsed),
    heapUsedWithSessionsMB: mb(up?.heapUsed ?? 0),
    rssPerSessionMB: +((upRss - before.rss) / SESSIONS / 1024 / 1024).toFixed(2),
    peakRssPerSessionMB: +((peak - before.rss) / SESSIONS / 1024 / 1024).toFixed(2),
    brokerCpuPercentWhileTyping: cpu ? +(((cpu.user + cpu.system) / 1000 / (SECONDS * 1000 - 3000)) * 100).toFixed(1) : undefined,
  }, null, 1));
  await broker.close();
  await cp.close();
  await sshd.close();
}

async function runClients(port: number, token: string | undefined, keyFile: string | undefined): Promise<void> {
  const auth = keyFile ? { username: 'root', privateKey: readFileSync(keyFile) } : { username: 'root@bench', tryKeyboard: true };
  const latencies: number[] = [];
  let failures = 0;
  let sent = 0;

  const open = (i: number) => new Promise<{ client: ssh2.Client; ch: ssh2.ClientChannel }>((resolve, reject) => {
    const client = new ssh2.Client();
    client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => token ?? '')));
    client.once('error', reject);
    client.once('ready', () => {
      // Ready once the shell prints its prompt. This machine's root .bashrc runs `pyenv rehash`,
      // which serialises on a lock file: shells are opened a batch at a time, each batch waiting
      // for its prompts, so the measured part sees running shells, not rc files queueing.
      client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, ch) => {
        if (err) return reject(err);
        const t = setTimeout(() => reject(new Error('no prompt within 120 s')), 120_000);
        ch.once('data', () => {
          clearTimeout(t);
          resolve({ client, ch });
        });
      });
    });
    client.connect({ host: '127.0.0.1', port, ...auth, readyTimeout: 120_000 });
    void i;
  });

  const sessions: { client: ssh2.Client; ch: ssh2.ClientChannel }[] = [];
  for (let i = 0; i < SESSIONS; i += CONNECT_PARALLEL) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(CONNECT_PARALLEL, SESSIONS - i) }, (_, k) => open(i + k)));
    for (const r of batch) {
      if (r.status === 'fulfilled') sessions.push(r.value);
      else failures++;
    }
  }
  const connected = sessions.length;
  process.stdout.write(JSON.stringify({ up: connected }) + '\n');

  // Each session types `echo $((K+1000))-x` once a second and waits for `K+1000-x` in the output
  // (the typed line shows `$((…))`, so only the command's result matches).
  await Promise.all(sessions.map(({ ch }, i) => new Promise<void>((resolve) => {
    let buf = '';
    let waiting: { want: string; at: bigint } | undefined;
    ch.on('data', (d: Buffer) => {
      buf += d.toString("latin1");
      if (buf.length > 8192) buf = buf.slice(-4096);
      if (waiting && buf.includes(waiting.want)) {
        latencies.push(Number(process.hrtime.bigint() - waiting.at) / 1e6);
        waiting = undefined;
        buf = '';
      }
    });
    let k = 0;
    const tick = () => {
      if (k >= SECONDS) return resolve();
      if (waiting) failures++;
      const n = 1000 + k++;
      waiting = { want: `${n}-x`, at: process.hrtime.bigint() };
      sent++;
      ch.write(`echo $((${n - 1000}+1000))-x\r`);
      setTimeout(tick, 1000);
    };
    // Spread over the second so the sessions do not all type in the same tick.
    setTimeout(tick, (i * 1000) / sessions.length);
  })));
  for (const { client, ch } of sessions) {
    ch.end('exit\r');
    client.end();
  }
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => +(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN).toFixed(2);
  process.stdout.write(JSON.stringify({ done: { connected, commandsSent: sent, answered: latencies.length, failures, latencyMs: { p50: pct(50), p99: pct(99), max: pct(100) } } }) + '\n');
}
