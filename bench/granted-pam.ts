/**
 * A `pam serve` process for the benches that drive both brokers (index-live.ts, index-worker.ts):
 * one SSH target `web` (root, key login) over the bench's sshd and one Postgres target DB over the
 * machine's PostgreSQL (trust), a bench user with approved grants on both, and an auditor.
 */
import { execFileSync, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { OPENSSH_OPTS, type TestSshd } from '../test/helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../test/helpers/pam-process.js';

const ROLES = `roles:
  - name: bench
    groups: [bench]
    can_request: [{ targets: ["*"], logins: ["*"], max_duration: 8h }]
  - name: boss
    groups: [boss]
    can_approve: [bench]
    can_audit: true
`;

function targets(sshd: TestSshd, db: string): string {
  return `targets:
  - name: web
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web-root } }
  - name: ${db}
    protocol: postgres
    address: "127.0.0.1:5432"
    database: ${db}
    tls: disable
    logins: { postgres: { secret: pg } }
`;
}

export interface GrantedPam {
  p: PamProcess;
  /** The bench user's token (grants on `web` as root and on DB as postgres approved). */
  token: string;
  /** The approver's token, who may also audit (search, recordings). */
  auditor: string;
}

/** Starts `pam serve` (from `entry`, another checkout's bin/pam.js, when given) with `extra` config lines. */
export async function startGrantedPam(opts: { sshd: TestSshd; db: string; extra?: string; entry?: string; nodeArgs?: string[] }): Promise<GrantedPam> {
  const p = await startPamProcess({ roles: ROLES, extra: targets(opts.sshd, opts.db) + (opts.extra ?? ''), ...(opts.entry ? { entry: opts.entry } : {}), ...(opts.nodeArgs?.length ? { nodeArgs: opts.nodeArgs } : {}) });
  const token = (await p.pam(['dev', 'token', 'bench', '--groups', 'bench', '--ttl', '8h'])).stdout.trim();
  const auditor = (await p.pam(['dev', 'token', 'boss', '--groups', 'boss', '--ttl', '8h'])).stdout.trim();
  await p.pam(['secret', 'set', 'web-root'], {}, opts.sshd.userKey);
  await p.pam(['secret', 'set', 'pg'], {}, 'unused-trust\n');
  for (const [t, l] of [['web', 'root'], [opts.db, 'postgres']]) {
    const r = await p.pam(['request', '--target', t!, '--login', l!, '--duration', '8h', '--reason', 'bench', '--json'], { PAM_TOKEN: token });
    await p.pam(['approve', JSON.parse(r.stdout).id], { PAM_TOKEN: auditor });
  }
  return { p, token, auditor };
}

/**
 * `ssh root@web cat FILE > /dev/null` through the proxy with the OpenSSH client; resolves with the
 * seconds it took. `pty`: `ssh -tt` (a terminal recording) instead of no pty (a raw recording).
 */
export function sshCat(port: number, token: string, file: string, opts: { pty?: boolean } = {}): Promise<number> {
  const args = ['-P', 'IAM token', '-e', 'ssh', ...(opts.pty ? ['-tt'] : []), ...OPENSSH_OPTS, '-o', 'LogLevel=ERROR', '-o', `Port=${port}`, '-o', 'User=root@web', '127.0.0.1', `cat ${file}`];
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn('sshpass', args, { env: { ...process.env, SSHPASS: token }, stdio: [opts.pty ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d));
    p.once('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e9) : reject(new Error(`ssh exited ${code}: ${err}`))));
  });
}

/** `mib` MiB of random bytes as base64 text (the index's worst case: every line a new token) at `dir/bulk.txt`; its path and size in MiB. */
export function bulkBase64File(dir: string, mib: number): { file: string; mib: number } {
  const file = join(dir, 'bulk.txt');
  execFileSync('sh', ['-c', `head -c ${Math.round((mib * 1024 * 1024 * 3) / 4)} /dev/urandom | base64 > ${file}`]);
  return { file, mib: statSync(file).size / 1048576 };
}
