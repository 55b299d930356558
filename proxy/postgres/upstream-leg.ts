/**
 * A session's side of its upstream connection: reading it while relaying (through the reused read
 * buffer when the connection has one, reused-reads.ts, else through 'data' events) and letting go
 * of it at the end.
 */
import type { Socket } from 'node:net';
import { closeUpstream } from './session-end.js';
import type { UpstreamConnection } from './upstream.js';
import type { PooledConnection, UpstreamPool } from './upstream-pool.js';

/** Hands the connection's reads to `onChunk` from now on (what came with the login first) and resumes it. */
export function readUpstream(conn: UpstreamConnection, onChunk: (chunk: Buffer) => void): void {
  if (conn.reads) conn.reads.take(onChunk);
  else conn.socket.on('data', onChunk);
  if (conn.leftover.length) onChunk(conn.leftover);
  conn.socket.resume();
}

/**
 * The session ends: it stops reading (reads are 'data' events again, for the pool's reset), and
 * the connection goes back to `pool` if it came from one and the session ended `clean`, else it
 * is closed with a Terminate.
 */
export function letGoUpstream(conn: PooledConnection, pool: UpstreamPool | undefined, clean: boolean): void {
  conn.reads?.take(undefined);
  conn.socket.removeAllListeners('data');
  if (pool && conn.poolKey) pool.release(conn, clean);
  else closeUpstream(conn.socket);
}

/**
 * Call after writing views of an upstream chunk to `client`: bytes the kernel has not taken yet
 * (a write in progress or queued) still point into the read buffer, so the next read goes into a
 * fresh one.
 */
export function keepWhatIsUnsent(conn: UpstreamConnection, client: Socket): void {
  if (conn.reads && client.writableLength > 0) conn.reads.pin();
}
