import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { Authorized } from '../../access/access.types.js';
import type { SshTarget } from '../../config/config.types.js';
import { HostKeyMismatch, UpstreamError } from './errors.js';

const { Client } = ssh2;
type Client = InstanceType<typeof ssh2.Client>;

/** Host key algorithms to offer for each pinned key type, so the target shows that key. */
export const HOST_KEY_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'rsa-sha2-256': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'rsa-sha2-512': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
};

export function sshFingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Parses a pinned "type base64 [comment]" line into its type and key blob. */
export function parsePinnedKey(line: string): { type: string; blob: Buffer } {
  const [type, b64] = line.trim().split(/\s+/);
  if (!type || !b64) throw new UpstreamError('pinned host key is not an OpenSSH public key line');
  return { type, blob: Buffer.from(b64, 'base64') };
}

export interface UpstreamOptions {
  readyTimeoutMs?: number;
  /**
   * Relays agent channels the target opens (session-forward.ts). It holds no keys, so the login
   * never authenticates with it; it only makes ssh2 accept `auth-agent@openssh.com` channels.
   */
  agent?: ssh2.BaseAgent;
}

/**
 * Logs in to the target with the vaulted credential (a private key or a password), which the
 * session lifecycle revealed from the `Authorized` proof and wipes afterwards. The host key is
 * compared byte for byte with the pinned one; a mismatch rejects with HostKeyMismatch before
 * any credential is sent (ssh2 verifies the host key during key exchange, ahead of user
 * authentication).
 */
export async function connectUpstream(auth: Authorized, secret: Buffer, opts: UpstreamOptions = {}): Promise<Client> {
  const target = auth.target as SshTarget;
  const pinned = parsePinnedKey(target.hostKey);
  const isKey = /^-----BEGIN /.test(secret.subarray(0, 16).toString('latin1'));
  let mismatch: HostKeyMismatch | undefined;
  const client = new Client();
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', (err) => reject(mismatch ?? new UpstreamError(`cannot reach target "${target.name}": ${err.message}`, { cause: err })));
      client.once('close', () => reject(mismatch ?? new UpstreamError(`target "${target.name}" closed the connection`)));
      client.connect({
        host: target.host,
        port: target.port,
        username: auth.login,
        ...(isKey ? { privateKey: secret } : { password: secret.toString('utf8') }),
        ...(opts.agent ? { agent: opts.agent } : {}),
        readyTimeout: opts.readyTimeoutMs ?? 15_000,
        keepaliveInterval: 30_000,
        algorithms: { serverHostKey: (HOST_KEY_ALGOS[pinned.type] ?? [pinned.type]) as never },
        hostVerifier: (key: Buffer) => {
          if (key.equals(pinned.blob)) return true;
          mismatch = new HostKeyMismatch(target.name, sshFingerprint(key));
          return false;
        },
      });
    });
  } catch (err) {
    client.removeAllListeners('error');
    client.on('error', () => {});
    client.end();
    throw err;
  }
  // As on the client's socket (server.ts): no Nagle delay on the relay's small or partial writes.
  client.setNoDelay(true);
  return client;
}
