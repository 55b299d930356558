/**
 * Keystroke echo latency: an ssh2 client in a pty shell running `cat` types one character at a
 * time and waits for its echo, straight to sshd and through the broker (recording on), in one
 * run. Reports p50/p99 of each and the difference the proxy adds.
 *
 *   node bin/run-ts.js bench/ssh-latency.ts [--n 1000] [--serve] [--blocks 1] [--extra 'YAML']
 *
 * --blocks K: the N keystrokes of each path in K blocks, direct and proxied alternated block by
 * block (a neighbour's load then falls on both alike). --extra: YAML lines for `pam serve`'s
 * config (e.g. `index: { enabled: false }`), with --serve.
 *
 * --serve: through `pam serve` as its own process from YAML (ssh-serve-setup.ts), the figure
 * the issue asks for; without it the broker runs in this process (a profiling aid).
 */
import ssh2 from 'ssh2';
import { startSshBench } from './ssh-bench-setup.js';
import { startServeBench } from './ssh-serve-setup.js';

const i = process.argv.indexOf('--n');
const N = i > 0 ? Number(process.argv[i + 1]) : 1000;

const serve = process.argv.includes('--serve');
const bi = process.argv.indexOf('--blocks');
const BLOCKS = bi > 0 ? Number(process.argv[bi + 1]) : 1;
const ei = process.argv.indexOf('--extra');
const EXTRA = ei > 0 ? process.argv[ei + 1]! : undefined;
const setup = serve ? await startServeBench(EXTRA ? { extra: EXTRA } : {}) : await startSshBench();
const { sshd, token } = setup;
const brokerPort = 'pam' in setup ? setup.port : setup.broker.port;

function connect(cfg: ssh2.ConnectConfig): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => token)));
    c.once('ready', () => resolve(c)).once('error', reject);
    c.connect({ host: '127.0.0.1', readyTimeout: 20_000, ...cfg });
  });
}

async function measure(client: ssh2.Client, n: number): Promise<number[]> {
  const ch = await new Promise<ssh2.ClientChannel>((res, rej) => client.shell({ term: 'dumb' }, (e, s) => (e ? rej(e) : res(s))));
  let buf = '';
  let waiter: (() => void) | undefined;
  ch.on('data', (d: Buffer) => {
    buf += d.toString();
    waiter?.();
  });
  const until = (s: string) => new Promise<void>((r) => {
    waiter = () => {
      if (buf.includes(s)) {
        waiter = undefined;
        r();
      }
    };
    waiter();
  });
  ch.write('stty -icanon; exec cat >/dev/null\r');
  await new Promise((r) => setTimeout(r, 500));
  const out: number[] = [];
  for (let k = 0; k < n + 50; k++) {
    const c = String.fromCharCode(97 + (k % 26));
    buf = '';
    const t = process.hrtime.bigint();
    ch.write(c);
    await until(c);
    if (k >= 50) out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  ch.close();
  client.end();
  return out;
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const direct: number[] = [];
const proxied: number[] = [];
for (let b = 0; b < BLOCKS; b++) {
  const n = Math.ceil(N / BLOCKS);
  direct.push(...(await measure(await connect({ port: sshd.port, username: 'root', privateKey: sshd.userKey }), n)));
  proxied.push(...(await measure(await connect({ port: brokerPort, username: 'root@bench', tryKeyboard: true }), n)));
}
direct.sort((a, b) => a - b);
proxied.sort((a, b) => a - b);
console.log(JSON.stringify({
  n: N,
  broker: serve ? 'pam serve (own process)' : 'in-process (profiling aid)',
  directMs: { p50: +pct(direct, 50).toFixed(3), p99: +pct(direct, 99).toFixed(3) },
  proxyMs: { p50: +pct(proxied, 50).toFixed(3), p99: +pct(proxied, 99).toFixed(3) },
  addedMs: { p50: +(pct(proxied, 50) - pct(direct, 50)).toFixed(3), p99: +(pct(proxied, 99) - pct(direct, 99)).toFixed(3) },
}));
if ('pam' in setup) await setup.close();
else {
  await setup.broker.close();
  await setup.cp.close();
  await sshd.close();
}
