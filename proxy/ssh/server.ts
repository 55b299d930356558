import { generateEd25519 } from './ed25519-keygen.js';
import '../gc-tuning.js';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import type { BrokerDeps, Listener } from '../broker.types.js';
import type { SshKeyLookup } from './auth.js';
import { SshConnection, type SshBrokerOptions } from './session.js';
import { LoginGuard, MAX_PREAUTH_SSH_BYTES, sourceOf, type LoginTicket } from '../login-guard.js';
import type { Server, Socket } from 'node:net';

export type { SshBrokerOptions } from './session.js';
export type { OnEnter, EnterVerdict, LineSource } from './enter-gate.js';

/**
 * The proxy's host key: `ssh.host_key_file` if configured, else `{data_dir}/ssh_host_ed25519_key`,
 * generated (0600) on first start.
 */
export async function loadHostKey(deps: Pick<BrokerDeps, 'config'>): Promise<Buffer> {
  const configured = deps.config.ssh.hostKeyFile;
  if (configured) return readFile(configured);
  const path = join(deps.config.dataDir, 'ssh_host_ed25519_key');
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const pair = generateEd25519('pam-proxy host key');
  const tmp = `${path}.${randomBytes(3).toString('hex')}.tmp`;
  await writeFile(tmp, pair.private, { mode: 0o600, flag: 'wx' });
  await writeFile(`${path}.pub`, pair.public + '\n', { mode: 0o644 });
  await rename(tmp, path);
  return Buffer.from(pair.private);
}

/**
 * Starts the SSH door. Users connect with `ssh -l LOGIN@TARGET proxyhost` and authenticate with
 * their IAM token (keyboard-interactive or password), or with a key bound by `pam login --key`
 * when the deps carry `sshKeys`.
 */
export async function startSshBroker(
  deps: BrokerDeps & { sshKeys?: SshKeyLookup },
  listen: { host: string; port: number },
  opts: SshBrokerOptions = {},
): Promise<Listener> {
  const hostKey = await loadHostKey(deps);
  const options: SshBrokerOptions = { keys: deps.sshKeys, ...opts };
  const live = new Set<SshConnection>();
  // One guard per process when the control plane gives it: the per-source cap spans both ports.
  const guard = deps.loginGuard ?? new LoginGuard(deps.config.login);
  // ssh2 announces a connection only after the client's version line: the login deadline and
  // the per-source slot start at TCP accept, so a client that sends nothing is timed out too.
  const pending = new WeakMap<Socket, { ticket: LoginTicket; conn?: SshConnection }>();
  const server = new ssh2.Server({ hostKeys: [hostKey], ident: 'pam-proxy' }, (client, info) => {
    const slot = pending.get((client as unknown as { _sock: Socket })._sock);
    if (!slot) return client.end();
    slot.conn = new SshConnection(deps, options, client, `${info.ip}:${info.port}`, (c) => live.delete(c), slot.ticket);
    live.add(slot.conn);
  });
  (server as unknown as { _srv: Server })._srv.on('connection', (socket: Socket) => {
    // Nagle's algorithm held each partial segment until the previous one was acknowledged: SFTP
    // (64 reads of 32 KiB in flight) ran at 0.4x direct through the proxy and 0.7-1.0x without it.
    socket.setNoDelay(true);
    const source = sourceOf(socket.remoteAddress);
    const ticket = guard.admit(source, (seconds) => {
      const s = pending.get(socket);
      if (s?.conn) s.conn.loginTimedOut(seconds);
      else socket.destroy();
    }, {
      // ssh2 takes packets of up to ~35 KB, as many as come: the whole talk before login is capped.
      socket, maxBytes: MAX_PREAUTH_SSH_BYTES,
      onOver: (bytes) => {
        // Nothing more is read from it (ssh2 parses no further packet); the DISCONNECT goes
        // out, and the socket is gone shortly after even if the client never reads it.
        socket.pause();
        const s = pending.get(socket);
        if (s?.conn) s.conn.preauthOverLimit(bytes, MAX_PREAUTH_SSH_BYTES);
        else socket.destroy();
        setTimeout(() => socket.destroy(), 2000).unref();
        void deps.rejections?.rejected({ type: 'connection.refused', via: 'ssh', reason: 'too many bytes before login', bytes, limit: MAX_PREAUTH_SSH_BYTES, client: source }).catch(() => undefined);
      },
    });
    if (!ticket) {
      // Over max_unauthenticated_per_source: dropped before the handshake costs anything.
      socket.destroy();
      void deps.rejections?.rejected({ type: 'connection.refused', via: 'ssh', reason: 'too many connections waiting to log in', client: source }).catch(() => undefined);
      return;
    }
    pending.set(socket, { ticket });
    socket.once('close', () => ticket.done());
  });
  server.on('error', (err: Error) => console.error('ssh broker: listener error', err));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    stopAccepting() {
      // ssh2's Server has no `listening`; a second close() (from close()) just reports it.
      server.close(() => undefined);
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...live].map((c) => c.end('proxy shutting down')));
      await closed;
    },
  };
}
