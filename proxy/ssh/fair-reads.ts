import type { Socket } from 'node:net';

/**
 * Bytes one socket may deliver before the event loop turns to the other sockets. libuv reads a
 * readable TCP socket up to 32 times 64 KiB in one go, and the broker decrypts, records and
 * re-encrypts each piece before the next: a burst of 2 MiB from the target (an SFTP client's
 * 64 reads in flight, answered at once) held the client's next read requests back for the
 * whole burst, and the transfer waited on that round trip.
 */
export const READ_TURN_BYTES = 256 * 1024;

/**
 * After READ_TURN_BYTES in one turn of the event loop, `sock` pauses until the next turn (its
 * data stays buffered, in order), so reads from the other leg are handled in between. Installed
 * only once a connection is logged in: before that the pre-login byte cap (login-guard.ts)
 * pauses the socket for good, and a resume here would undo it.
 *
 * ssh2 does not expose its socket: `owner._sock` (ssh2 1.x) is read, and nothing is done when
 * it is not there.
 */
export function fairReads(owner: unknown, turnBytes = READ_TURN_BYTES): void {
  const sock = (owner as { _sock?: Socket })._sock;
  if (!sock || typeof sock.pause !== 'function') return;
  let taken = 0;
  let turn = false;
  const nextTurn = () => {
    turn = false;
    if (taken < turnBytes) {
      taken = 0;
      return;
    }
    taken = 0;
    if (!sock.destroyed) sock.resume();
  };
  sock.on('data', (chunk: Buffer) => {
    const before = taken;
    taken += chunk.length;
    if (!turn) {
      turn = true;
      setImmediate(nextTurn);
    }
    if (before < turnBytes && taken >= turnBytes) sock.pause();
  });
}
