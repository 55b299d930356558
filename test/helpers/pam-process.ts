/**
 * `pam serve` as its own process from a YAML file, as a user runs it, plus the `pam` CLI
 * against it. For tests that must see the shipped process: its sockets, its log, its RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor, type RunResult } from './sshd.js';

export const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});

export interface PamProcessOptions {
  /** roles.yaml content. */
  roles: string;
  /** YAML lines appended to the config (targets:, store:, http:, login_timeout: …); a function gets the process's directory. */
  extra?: string | ((dir: string) => string);
  /** `store:` value; default embedded. */
  store?: string;
  /** Scheme of listen.http (https needs http.tls_cert/tls_key in `extra`). */
  httpScheme?: 'http' | 'https';
  /** Also open listen.metrics (/metrics, /healthz, /readyz) on a free port. */
  metrics?: boolean;
  env?: Record<string, string>;
  /** Node options for the `pam serve` process only (not the CLI calls), e.g. ['--cpu-prof']. */
  nodeArgs?: string[];
  /** The `pam` entry for `pam serve` and the CLI calls (default this checkout's bin/pam.js): another checkout's, for an A/B bench. */
  entry?: string;
  /** Shell commands run before `pam serve` (it then runs under bash), e.g. `trap '' XFSZ; ulimit -f 512`. */
  shellPrefix?: string;
}

export interface PamProcess {
  dir: string;
  configFile: string;
  ports: { ssh: number; pg: number; http: number; metrics?: number };
  server: string;
  /** The running `pam serve` (a new one after restart()). */
  readonly proc: ChildProcess;
  /** Everything the process printed so far. */
  log(): string;
  /** What it printed on stdout only (the JSON log lines). */
  stdout(): string;
  /** What it printed on stderr only. */
  stderr(): string;
  /** A dev-issuer token (`pam dev token`). */
  token(user: string, groups: string): Promise<string>;
  /** `user` (group dba) requests the login, a `security` user approves it. */
  grant(user: string, target: string, login: string): Promise<void>;
  /** GET on the metrics listener (needs `metrics: true`). */
  ops(path: string): Promise<{ status: number; body: string }>;
  /** Resolves with the exit code once the process has exited. */
  exited(): Promise<number | null>;
  /** The latest dev sign-in secret printed (dev issuer only; single-use, each use prints the next). */
  devSecret(): string | undefined;
  /** The `pam` CLI against this process (`cwd`: where it runs; default this repository). */
  pam(args: string[], env?: Record<string, string>, input?: string, cwd?: string): Promise<RunResult>;
  /** SIGTERM, then `pam serve` again on the same config, directory and ports; the log starts anew. */
  restart(): Promise<void>;
  /**
   * One more `pam serve` on `configFile` (default this one) while this process is stopped:
   * resolves with its exit code and output when it refuses to start, or code null once it
   * served (it is then stopped again).
   */
  serveOnce(configFile?: string): Promise<{ code: number | null; out: string }>;
  /** Peak resident set (VmHWM) and current RSS of the process, bytes, from /proc. */
  memory(): Promise<{ hwm: number; rss: number }>;
  /** Stops the process (SIGTERM) and keeps its directory. */
  halt(): Promise<void>;
  /** Stops the process and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Free ports are picked before the process binds them, so another engineer's process can take
 * one in between: a start that fails with EADDRINUSE is tried again on fresh ports.
 */
export async function startPamProcess(opts: PamProcessOptions): Promise<PamProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startOnce(opts: PamProcessOptions): Promise<PamProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'pam-proc-'));
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'roles.yaml'), opts.roles);
  const ports = { ssh: await freePort(), pg: await freePort(), http: await freePort(), metrics: opts.metrics ? await freePort() : undefined };
  const scheme = opts.httpScheme ?? 'http';
  const httpListen = scheme === 'https' ? `https://127.0.0.1:${ports.http}` : `127.0.0.1:${ports.http}`;
  const configFile = join(dir, 'pam.yaml');
  const server = `${scheme}://127.0.0.1:${ports.http}`;
  const entry = opts.entry ?? join(process.cwd(), 'bin/pam.js');
  const serveArgv = (file: string) => [...(opts.nodeArgs ?? []), entry, 'serve', '--config', file];
  const spawnServe = (file: string) => opts.shellPrefix
    ? spawn('bash', ['-c', `${opts.shellPrefix}; exec node ${serveArgv(file).map((a) => `'${a}'`).join(' ')}`], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
    : spawn('node', serveArgv(file), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  let stdout = '';
  let stderr = '';
  let proc!: ChildProcess;
  let exit!: Promise<number | null>;
  const launch = async () => {
    out = stdout = stderr = '';
    const p = (proc = spawnServe(configFile));
    exit = new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
    p.stdout!.on('data', (d) => { out += d; stdout += d; });
    p.stderr!.on('data', (d) => { out += d; stderr += d; });
    try {
      await waitFor(() => out.includes('pam: serving') || p.exitCode !== null, 'pam serve to start', 2400);
    } catch (e) {
      p.kill('SIGKILL');
      throw new Error(`${(e as Error).message}; log:\n${out}`);
    }
  };
  const halt = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    await exit;
  };
  await writeFile(configFile, `listen: { ssh: "127.0.0.1:${ports.ssh}", postgres: "127.0.0.1:${ports.pg}", http: "${httpListen}"${ports.metrics ? `, metrics: "127.0.0.1:${ports.metrics}"` : ''} }
data_dir: "./data"
store: "${opts.store ?? 'embedded'}"
policies_dir: "./policies"
identity: { dev: true, audience: "pam-proxy" }
${typeof opts.extra === 'function' ? opts.extra(dir) : opts.extra ?? ''}
`);
  await launch();
  if (proc.exitCode !== null) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`pam serve exited ${proc.exitCode}:\n${out}`);
  }

  const pam = (args: string[], env: Record<string, string> = {}, input?: string, cwd?: string) => new Promise<RunResult>((resolve) => {
    const p = spawn('node', [entry, ...args], { cwd, env: { ...process.env, PAM_CONFIG: configFile, PAM_SERVER: server, ...opts.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.end(input ?? '');
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });

  const token = async (user: string, groups: string) => {
    const r = await pam(['dev', 'token', user, '--groups', groups]);
    if (r.code !== 0) throw new Error(`pam dev token: ${r.stderr}`);
    return r.stdout.trim();
  };

  return {
    dir, configFile, ports, server, pam, token,
    get proc() {
      return proc;
    },
    log: () => out,
    stdout: () => stdout,
    stderr: () => stderr,
    async grant(user, target, login) {
      const req = await pam(['request', '--target', target, '--login', login, '--duration', '1h', '--reason', 'test', '--json'], { PAM_TOKEN: await token(user, 'dba') });
      if (req.code !== 0) throw new Error(`pam request: ${req.stderr}`);
      const ok = await pam(['approve', JSON.parse(req.stdout).id], { PAM_TOKEN: await token('sec-bot', 'security') });
      if (ok.code !== 0) throw new Error(`pam approve: ${ok.stderr}`);
    },
    async ops(path) {
      const r = await fetch(`http://127.0.0.1:${ports.metrics}${path}`);
      return { status: r.status, body: await r.text() };
    },
    exited: () => (proc.exitCode !== null ? Promise.resolve(proc.exitCode) : exit),
    devSecret: () => [...out.matchAll(/dev sign-in secret: ([A-Za-z0-9_-]+)/g)].at(-1)?.[1],
    async memory() {
      const status = await readFile(`/proc/${proc.pid}/status`, 'utf8');
      const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
      return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
    },
    async restart() {
      await halt();
      await launch();
      if (proc.exitCode !== null) throw new Error(`pam serve exited ${proc.exitCode}:\n${out}`);
    },
    async serveOnce(file = configFile) {
      const p = spawnServe(file);
      let once = '';
      p.stdout!.on('data', (d) => (once += d));
      p.stderr!.on('data', (d) => (once += d));
      await waitFor(() => once.includes('pam: serving') || p.exitCode !== null, 'pam serve to start or refuse', 2400);
      if (p.exitCode === null) {
        p.kill('SIGTERM');
        await new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)));
        return { code: null, out: once };
      }
      return { code: p.exitCode, out: once };
    },
    halt,
    async stop() {
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Roles for `grant()`: `dba` may request anything, `security` approves and audits. */
export const PROCESS_ROLES = `roles:
  - name: dba
    groups: [dba]
    can_request:
      - { targets: ["*"], logins: ["*"], max_duration: 8h }
  - name: security
    groups: [security]
    can_approve: [dba]
    can_audit: true
`;

/** The value of one series in Prometheus text (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}
