/**
 * Keystroke echo latency: an ssh2 client in a pty shell running `cat` types one character at a
 * time and waits for its echo, straight to sshd and through the broker (recording on), in one
 * run. Reports p50/p99 of each and the difference the proxy adds.
 *
 *   node bin/run-ts.js bench/ssh-latency.ts [--n 1000] [--serve] [--blocks 1] [--warm 8000] [--extra 'YAML']
 *
 * Warm-up: a proxy that has been serving for a while runs its session path as optimized code;
 * one just started runs it in V8's interpreter and baseline tiers while TurboFan compiles it on
 * background threads, which on two cores take turns with the relay (measured: about 200
 * compiles in the first 4,000 keystrokes, p99 3.1-3.4 ms; after 8,000, 0.4-0.7 ms). So the
 * first 2,000 proxied keystrokes are reported on their own as `coldProxyMs` (what the first
 * session after a restart sees), then --warm keystrokes in all (default 8000, in sessions of
 * 2,000) go through the proxy unmeasured before the alternated blocks. The direct path's client
 * warms up alike (its first --warm keystrokes straight to sshd are not measured either).
 *
 * --blocks K: the N keystrokes of each path in K blocks, direct and proxied alternated block by
 * block (a neighbour's load then falls on both alike). --extra: YAML lines for `pam serve`'s
 * config (e.g. `index: { enabled: false }`), with --serve. --node-args 'FLAGS': flags for the
 * `pam serve` process's node (e.g. `--trace-opt`), with --serve; --pam-stdout FILE writes what
 * that process printed on stdout (its log, and such traces) to FILE at the end.
 *
 * --serve: through `pam serve` as its own process from YAML (ssh-serve-setup.ts), the figure
 * the issue asks for; without it the broker runs in this process (a profiling aid).
 */
import { writeFileSync } from 'node:fs';
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
const ni = process.argv.indexOf('--node-args');
const NODE_ARGS = ni > 0 ? process.argv[ni + 1]!.split(' ').filter(Boolean) : undefined;
const oi = process.argv.indexOf('--pam-stdout');
const PAM_STDOUT = oi > 0 ? process.argv[oi + 1] : undefined;
const wi = process.argv.indexOf('--warm');
const WARM = wi > 0 ? Number(process.argv[wi + 1]) : 8000;
const setup = serve ? await startServeBench({ ...(EXTRA ? { extra: EXTRA } : {}), ...(NODE_ARGS ? { nodeArgs: NODE_ARGS } : {}) }) : await startSshBench();
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
const toProxy = () => connect({ port: brokerPort, username: 'root@bench', tryKeyboard: true });
const toSshd = () => connect({ port: sshd.port, username: 'root', privateKey: sshd.userKey });
const cold = WARM > 0 ? (await measure(await toProxy(), Math.min(2000, WARM))).sort((a, b) => a - b) : [];
for (let left = WARM - 2000; left > 0; left -= 2000) await measure(await toProxy(), Math.min(2000, left));
for (let left = WARM; left > 0; left -= 2000) await measure(await toSshd(), Math.min(2000, left));
for (let b = 0; b < BLOCKS; b++) {
  const n = Math.ceil(N / BLOCKS);
  direct.push(...(await measure(await toSshd(), n)));
  proxied.push(...(await measure(await toProxy(), n)));
}
direct.sort((a, b) => a - b);
proxied.sort((a, b) => a - b);
console.log(JSON.stringify({
  n: N,
  broker: serve ? 'pam serve (own process)' : 'in-process (profiling aid)',
  directMs: { p50: +pct(direct, 50).toFixed(3), p99: +pct(direct, 99).toFixed(3) },
  proxyMs: { p50: +pct(proxied, 50).toFixed(3), p99: +pct(proxied, 99).toFixed(3) },
  ...(cold.length ? { warmup: WARM, coldProxyMs: { p50: +pct(cold, 50).toFixed(3), p99: +pct(cold, 99).toFixed(3) } } : {}),
  addedMs: { p50: +(pct(proxied, 50) - pct(direct, 50)).toFixed(3), p99: +(pct(proxied, 99) - pct(direct, 99)).toFixed(3) },
}));
if ('pam' in setup && PAM_STDOUT) writeFileSync(PAM_STDOUT, setup.pam.stdout());
if ('pam' in setup) await setup.close();
else {
  await setup.broker.close();
  await setup.cp.close();
  await sshd.close();
}
