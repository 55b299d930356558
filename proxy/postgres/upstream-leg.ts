/**
 * A session's side of its upstream connection: reading it while relaying (through the reused read
 * buffer when the connection has one, reused-reads.ts, else through 'data' events) and letting go
 * of it at the end.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
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

/** Answers up to this size are copied before they are written to a TLS client (ownedForTls). */
export const TLS_COPY_MAX = 16 * 1024;

/**
 * What to write to `client` for `pieces`, views of the reused read buffer: for a TLS client and
 * an answer of at most TLS_COPY_MAX bytes, one copy (a pooled allocation when small), else the
 * views themselves. A TLS socket's write counts as pending (writableLength > 0) until the TLS
 * layer's callback, however soon it has encrypted the bytes, so every read of a TLS session pinned
 * the buffer and the next read took a fresh 64 KiB: pgbench -S over TLS, 9,851 fresh buffers in
 * 9,856 reads (none without TLS), half a gigabyte a second of memory V8 counts as external.
 * Returns `pieces` itself when nothing was copied (the caller then keeps what is unsent).
 */
export function ownedForTls(client: Socket, pieces: Buffer[]): Buffer[] {
  if (!(client instanceof TLSSocket) || pieces.length === 0) return pieces;
  let total = 0;
  for (const p of pieces) total += p.length;
  return total > TLS_COPY_MAX ? pieces : [Buffer.concat(pieces, total)];
}
