import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fairReads, READ_TURN_BYTES } from '../../proxy/ssh/fair-reads.js';

const WARM = 32 * 1024 * 1024;

/**
 * A real TCP connection on loopback. The receiver first reads 32 MiB as fast as it can, so the
 * kernel grows its receive buffer as it does under a bulk transfer; then it stops reading for a
 * moment (a busy event loop) while the kernel moves the sender's buffered bytes over, so it holds
 * far more than one turn's share when reading starts again (as when sshd keeps writing while the
 * broker is busy with the other leg). From then on, the bytes a 'data' listener gets between two turns of the event loop
 * (setImmediate marks each turn) are counted.
 */
async function receive(fair: boolean): Promise<{ perTurn: number[]; digest: string; sent: string }> {
  const data = randomBytes(WARM + 16 * 1024 * 1024);
  const server = createServer((s) => s.end(data));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sock: Socket = connect((server.address() as { port: number }).port, '127.0.0.1');
  const perTurn: number[] = [];
  let counting = false;
  let done = false;
  const turn = () => { perTurn.push(0); if (!done) setImmediate(turn); };
  const hash = createHash('sha256');
  let got = 0;
  // As ssh2 does: its own 'data' listener first, then the broker's fairReads.
  sock.on('data', (c: Buffer) => {
    hash.update(c);
    got += c.length;
    if (counting) perTurn[perTurn.length - 1]! += c.length;
    else if (got >= WARM) {
      // Busy, as the broker is with the other leg: the kernel moves what the sender's buffer
      // holds into the receiver's meanwhile.
      const until = Date.now() + 200;
      while (Date.now() < until);
      counting = true;
      turn();
    }
  });
  if (fair) fairReads({ _sock: sock });
  await new Promise((r) => sock.on('end', r));
  done = true;
  sock.destroy();
  server.close();
  return { perTurn, digest: hash.digest('hex'), sent: createHash('sha256').update(data).digest('hex') };
}

describe('fairReads (the SSH broker reads each leg a share per turn)', () => {
  it('delivers at most one turn\'s share (plus the read that crossed it) per turn of the event loop, every byte in order', async () => {
    const r = await receive(true);
    expect(r.digest).toBe(r.sent);
    // libuv reads up to 64 KiB at a time: the read that crosses the share is the last of the turn.
    expect(Math.max(...r.perTurn)).toBeLessThanOrEqual(READ_TURN_BYTES + 64 * 1024);
  });

  it('without it, one turn takes several shares (the fault the bound above is about)', async () => {
    const r = await receive(false);
    expect(r.digest).toBe(r.sent);
    expect(Math.max(...r.perTurn)).toBeGreaterThan(READ_TURN_BYTES + 64 * 1024);
  });

  it('does nothing for an owner without a socket', () => {
    expect(() => fairReads({})).not.toThrow();
  });
});
