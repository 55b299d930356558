import type { Socket } from 'node:net';

/**
 * Corks the TCP socket under an ssh2 channel until the end of the current tick, so the SSH
 * packets written while handling one read from the other leg (a 64 KiB read carries two
 * 32 KiB packets) leave in one writev instead of one syscall each. Bulk relaying spends a
 * large share of its CPU in those syscalls.
 *
 * ssh2 does not expose the socket: this reads its `_client._sock` (ssh2 1.x) and does nothing
 * when it is not there.
 */
export function corkUntilTick(channel: unknown): void {
  const sock = (channel as { _client?: { _sock?: Socket } })._client?._sock;
  if (!sock || corked.has(sock) || typeof sock.cork !== 'function') return;
  corked.add(sock);
  sock.cork();
  process.nextTick(uncork, sock);
}

const corked = new WeakSet<Socket>();

function uncork(sock: Socket): void {
  corked.delete(sock);
  sock.uncork();
}
