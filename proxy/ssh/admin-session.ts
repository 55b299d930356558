/**
 * A maintenance connection to an SSH target for the proxy's own work (rotation, discovery):
 * the pinned host key as for user sessions (compared byte for byte before any credential is
 * sent), the given login and credential, and commands run with their output collected.
 */
import ssh2 from 'ssh2';
import type { SshTarget } from '../../config/config.types.js';
import { HOST_KEY_ALGOS, parsePinnedKey, sshFingerprint } from './upstream.js';

type Client = InstanceType<typeof ssh2.Client>;

export interface AdminSsh {
  /** Runs `command` (with `stdin` if given); resolves with its output and exit code. */
  run(command: string, stdin?: string): Promise<{ stdout: string; stderr: string; code: number | null }>;
  close(): void;
}

const isKey = (secret: Buffer) => /^-----BEGIN /.test(secret.subarray(0, 16).toString('latin1'));

export function openAdminSsh(target: SshTarget, login: string, secret: Buffer, timeoutMs = 15_000): Promise<AdminSsh> {
  const pinned = parsePinnedKey(target.hostKey);
  const client: Client = new ssh2.Client();
  let mismatch: string | undefined;
  return new Promise<AdminSsh>((resolve, reject) => {
    client.once('ready', () => resolve({
      run: (command, stdin) => new Promise((res, rej) => {
        client.exec(command, (err, ch) => {
          if (err) return rej(err);
          let stdout = '';
          let stderr = '';
          let code: number | null = null;
          ch.on('data', (d: Buffer) => (stdout += d.toString()));
          ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          ch.on('exit', (c: number | null) => (code = c));
          ch.on('close', () => res({ stdout, stderr, code }));
          ch.end(stdin ?? '');
        });
      }),
      close: () => client.end(),
    }));
    client.once('error', (err) => reject(new Error(mismatch ?? `cannot log in to ${target.name} as ${login}: ${err.message}`)));
    client.connect({
      host: target.host, port: target.port, username: login,
      ...(isKey(secret) ? { privateKey: secret } : { password: secret.toString('utf8') }),
      readyTimeout: timeoutMs,
      algorithms: { serverHostKey: (HOST_KEY_ALGOS[pinned.type] ?? [pinned.type]) as never },
      hostVerifier: (key: Buffer) => {
        if (key.equals(pinned.blob)) return true;
        mismatch = `target "${target.name}" presented host key ${sshFingerprint(key)}, not the pinned one`;
        return false;
      },
    });
  });
}
