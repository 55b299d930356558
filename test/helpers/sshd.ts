import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real OpenSSH sshd on a free loopback port, with its own host key and a root login key. */
export interface TestSshd {
  host: string;
  port: number;
  /** Pinned host key line "ssh-ed25519 AAAA…". */
  hostKey: string;
  /** Private key (OpenSSH format) authorized for root. */
  userKey: string;
  dir: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, proc: ChildProcess, log: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`sshd exited: ${await readFile(log, 'utf8').catch(() => '')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('sshd did not start listening');
}

export interface SshdOptions {
  /** Extra sshd_config lines, appended after the defaults (e.g. `X11Forwarding yes`). */
  config?: string[];
}

export async function startSshd(opts: SshdOptions = {}): Promise<TestSshd> {
  const dir = await mkdtemp(join(tmpdir(), 'pam-sshd-'));
  await mkdir('/run/sshd', { recursive: true });
  const keygen = (file: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pam-test', '-f', file]);
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'id_ed25519'));
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'id_ed25519.pub')), { mode: 0o600 });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(config, [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UsePAM no',
    'PermitRootLogin yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'Subsystem sftp internal-sftp',
    'AcceptEnv LANG LC_* TERM TZ',
    'PrintMotd no',
    'PrintLastLog no',
    'MaxSessions 50',
    'MaxStartups 100',
    'LogLevel VERBOSE',
    ...(opts.config ?? []),
    '',
  ].join('\n'));
  const log = join(dir, 'sshd.log');
  const proc = spawn('/usr/sbin/sshd', ['-D', '-f', config, '-E', log], { stdio: 'ignore' });
  await waitForPort(port, proc, log);
  const hostKey = (await readFile(join(dir, 'host_key.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  return {
    host: '127.0.0.1',
    port,
    hostKey,
    userKey: await readFile(join(dir, 'id_ed25519'), 'utf8'),
    dir,
    async close() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Options every OpenSSH client call through the proxy uses in tests. LogLevel INFO (the default)
 * because OpenSSH prints keyboard-interactive instructions and banners only from INFO up.
 */
export const OPENSSH_OPTS = [
  '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=INFO',
  '-o', 'PreferredAuthentications=keyboard-interactive,password', '-o', 'PubkeyAuthentication=no',
  '-o', 'NumberOfPasswordPrompts=1', '-o', 'ConnectTimeout=10',
];

export interface RunResult { code: number | null; stdout: string; stderr: string }

/**
 * Runs an OpenSSH client program (ssh, scp, sftp) under sshpass, which answers the proxy's
 * `IAM token:` keyboard-interactive prompt with `token`.
 */
export function runOpenSsh(program: 'ssh' | 'scp' | 'sftp', token: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('sshpass', ['-P', 'IAM token', '-e', program, ...OPENSSH_OPTS, ...args], {
      env: { ...process.env, SSHPASS: token },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}

/** Polls `fn` until it returns a truthy value (no wall-clock assertion: the test timeout bounds it). */
export async function waitFor<T>(fn: () => T | Promise<T>, what = 'condition', tries = 400): Promise<NonNullable<T>> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
