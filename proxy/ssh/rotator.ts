/**
 * SSH credential rotation: a new Ed25519 key pair; its public key is added to the login's
 * authorized keys on the target (`rotation.authorized_keys`, `%u` = login, default
 * `~/.ssh/authorized_keys`), proven by logging in with it, stored in the vault, and only then
 * the old key is removed and shown to fail. Until the vault holds the new key both keys work,
 * so a session opening at any moment logs in; a failure before that leaves the old key alone.
 */
import { generateEd25519 } from './ed25519-keygen.js';
import ssh2 from 'ssh2';
import type { SshTarget } from '../../config/config.types.js';
import type { CredentialRotator, RotationJob } from '../../access/rotation.types.js';
import { openAdminSsh, type AdminSsh } from './admin-session.js';

const SAFE_LOGIN = /^[A-Za-z0-9._-]{1,64}$/;

/** Shell words that set `f` to the authorized keys file of `login` on the target. */
export function keysFileScript(template: string | undefined, login: string): string {
  const path = (template ?? '~/.ssh/authorized_keys').replaceAll('%u', login);
  // Config and login are validated to plain path characters, so single quotes are enough.
  if (path.startsWith('~/')) return `h=$(getent passwd '${login}' | cut -d: -f6); [ -n "$h" ] || { echo "no home directory for ${login}" >&2; exit 3; }; f="$h"/'${path.slice(2)}'`;
  return `f='${path}'`;
}

const addScript = (f: string) => `set -e; ${f}; umask 077; mkdir -p "$(dirname "$f")"; touch "$f"; if [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ]; then echo >> "$f"; fi; cat >> "$f"`;

/** Keeps every line except those holding a key blob in `drop`, and earlier proxy keys (by comment) other than `keep`. */
const removeScript = (f: string, drop: string[], mark: string, keep: string) =>
  `set -e; ${f}; t="$f.pam-rotate.$$"; awk -v drop='${drop.join(' ')}' -v mark='${mark}' -v keep='${keep}' ` +
  `'BEGIN { n = split(drop, d, " ") } { x = 0; for (i = 1; i <= NF; i++) for (j = 1; j <= n; j++) if ($i == d[j]) x = 1; ` +
  `if ($NF == mark && index($0, keep) == 0) x = 1; if (!x) print }' "$f" > "$t"; cat "$t" > "$f"; rm -f "$t"`;

function publicBlob(privateKey: Buffer): string {
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error || Array.isArray(parsed)) throw new Error('the vaulted credential is not an SSH private key (SSH rotation needs a key, not a password)');
  return parsed.getPublicSSH().toString('base64');
}

async function check(s: AdminSsh, script: string, what: string, stdin?: string): Promise<void> {
  const r = await s.run(script, stdin);
  if (r.code !== 0) throw new Error(`${what} failed on the target (exit ${r.code}): ${r.stderr.trim().slice(0, 300) || 'no message'}`);
}

async function logsIn(target: SshTarget, login: string, key: Buffer): Promise<boolean> {
  try {
    (await openAdminSsh(target, login, key)).close();
    return true;
  } catch {
    return false;
  }
}

export function sshRotator(): CredentialRotator {
  return {
    check: (target, login, credential) => logsIn(target as SshTarget, login, credential),
    async rotate(job: RotationJob): Promise<void> {
      const target = job.target as SshTarget;
      if (!SAFE_LOGIN.test(job.login)) throw new Error(`login "${job.login}" has characters rotation will not put in a path`);
      const oldBlob = publicBlob(job.current);
      const mark = `pam-proxy:${job.secretName}`;
      const pair = generateEd25519(mark);
      const next = Buffer.from(pair.private);
      const newBlob = pair.public.split(' ')[1]!;
      const f = keysFileScript(target.rotation?.authorizedKeys, job.login);
      const adminLogin = job.via?.login ?? job.login;
      const admin = await openAdminSsh(target, adminLogin, job.via?.secret ?? job.current);
      try {
        await check(admin, addScript(f), 'adding the new key', `${pair.public}\n`);
        if (!(await logsIn(target, job.login, next))) {
          await admin.run(removeScript(f, [newBlob], mark, oldBlob)).catch(() => undefined);
          throw new Error(`the new key was added to ${target.rotation?.authorizedKeys ?? '~/.ssh/authorized_keys'} but does not log in (is that the file sshd reads?); removed it again`);
        }
        await job.commit(next);
        // The admin connection logged in with the old key and stays usable after its removal.
        try {
          await check(admin, removeScript(f, [oldBlob], mark, newBlob), 'removing the old key');
        } catch (err) {
          throw new Error(`the new key is in use, but ${(err as Error).message}`);
        }
        if (await logsIn(target, job.login, job.current)) {
          throw new Error('the new key is in use, but the old key still logs in (is it in another authorized keys file?)');
        }
      } finally {
        admin.close();
        next.fill(0);
      }
    },
  };
}
