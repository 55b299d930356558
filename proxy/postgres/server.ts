import '../gc-tuning.js';
import { createServer, type Socket } from 'node:net';
import { isIP } from 'node:net';
import type { BrokerDeps, Listener } from '../broker.types.js';
import { CancelKeys } from './cancel-keys.js';
import { PostgresSession } from './session.js';
import { loadTlsContext } from './tls.js';
import { errorResponse } from './backend-messages.js';
import { LoginGuard, sourceOf } from '../login-guard.js';
import { UpstreamPool } from './upstream-pool.js';

/** Loopback addresses (IPv4, IPv6, IPv4-mapped): cleartext tokens never leave the host there. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  if (address.startsWith('::ffff:')) address = address.slice(7);
  return address === '::1' || (isIP(address) === 4 && address.startsWith('127.'));
}

/**
 * The Postgres door: a listener speaking the PostgreSQL wire protocol to clients (psql,
 * pgbench, drivers) and relaying each authorized session to its target.
 */
export async function startPostgresBroker(deps: BrokerDeps, listen: { host: string; port: number }, opts: { reviewTimeoutMs?: number } = {}): Promise<Listener & { pool?: UpstreamPool }> {
  const { context } = await loadTlsContext(deps.config);
  const keys = new CancelKeys();
  const sockets = new Set<Socket>();
  // One guard per process when the control plane gives it: the per-source cap spans both ports.
  const guard = deps.loginGuard ?? new LoginGuard(deps.config.login);
  const poolConfig = deps.config.postgres.upstreamPool;
  const pool = poolConfig && poolConfig.size > 0 ? new UpstreamPool(poolConfig) : undefined;
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let session: PostgresSession | undefined;
    const login = guard.admit(sourceOf(socket.remoteAddress), (seconds) => (session ? session.loginTimedOut(seconds) : socket.destroy()));
    if (!login) {
      // Over max_unauthenticated_per_source. 53300 too_many_connections, as PostgreSQL says it.
      socket.end(errorResponse('FATAL', '53300', 'too many connections from your address are waiting to log in; try again shortly'));
      setTimeout(() => socket.destroy(), 1000).unref();
      void deps.rejections?.rejected({ type: 'connection.refused', via: 'postgres', reason: 'too many connections waiting to log in', client: sourceOf(socket.remoteAddress) }).catch(() => undefined);
      return;
    }
    socket.once('close', () => login.done());
    const plaintextOk = deps.config.postgres.allowPlaintextTokens || isLoopback(socket.localAddress);
    try {
      session = new PostgresSession(socket, { deps, tls: context, keys, plaintextOk, reviewTimeoutMs: opts.reviewTimeoutMs, login, pool });
    } catch {
      socket.destroy();
    }
  });
  server.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : listen.port;
  return {
    port,
    pool,
    stopAccepting() {
      if (server.listening) server.close();
      pool?.close();
    },
    async close() {
      pool?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
