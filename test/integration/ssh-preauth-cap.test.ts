/**
 * What an SSH client may send before it has logged in (issue 12), against the real `pam serve`
 * process: an answer longer than a token (16 KiB) is refused as such, and the whole talk before
 * login is capped at MAX_PREAUTH_SSH_BYTES (proxy/login-guard.ts), which ssh2's own limit
 * (~35 KB a packet, any number of packets) is not. A flood of clients sending large auth
 * messages, real SSH ones and raw ones streaming SSH_MSG_IGNORE packets before key exchange,
 * is cut off at the cap while the process's peak RSS (VmHWM from /proc) stays flat.
 *
 * login_timeout is 60 s here and the test timeout is shorter, so no connection in this file is
 * ended by the login deadline: each is ended by the cap, or the test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { startPamProcess, PROCESS_ROLES, type PamProcess } from '../helpers/pam-process.js';
import { MAX_PREAUTH_SSH_BYTES } from '../../proxy/login-guard.js';

let pam: PamProcess;

beforeAll(async () => {
  pam = await startPamProcess({ roles: PROCESS_ROLES, extra: 'login_timeout: 60s\nmax_unauthenticated_per_source: 200\n' });
}, 60_000);

afterAll(async () => {
  await pam?.stop();
});

/** An SSH binary packet before key exchange (no cipher, no MAC): SSH_MSG_IGNORE with `size` bytes of data. */
function ignorePacket(size: number): Buffer {
  const payload = Buffer.alloc(1 + 4 + size, 0x61);
  payload[0] = 2;
  payload.writeUInt32BE(size, 1);
  let pad = 8 - ((4 + 1 + payload.length) % 8);
  if (pad < 4) pad += 8;
  const packet = Buffer.alloc(4 + 1 + payload.length + pad);
  packet.writeUInt32BE(1 + payload.length + pad, 0);
  packet[4] = pad;
  payload.copy(packet, 5);
  return packet;
}

/** A raw client: the version line, then up to `total` bytes of IGNORE packets as fast as the socket takes them. */
function rawFlood(port: number, total: number): Promise<{ sent: number }> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const packet = ignorePacket(32 * 1024);
    let sent = 0;
    socket.on('error', () => {});
    socket.once('close', () => resolve({ sent }));
    socket.once('connect', () => {
      socket.write('SSH-2.0-flood_1.0\r\n');
      const pump = () => {
        while (sent < total && !socket.destroyed) {
          sent += packet.length;
          if (!socket.write(packet)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
  });
}

/** A real SSH client whose every attempt is a password of `size` bytes; resolves with what it saw. */
function bigPasswords(port: number, size: number, attempts: number): Promise<{ debug: string; banners: string[] }> {
  return new Promise((resolve) => {
    const c = new ssh2.Client();
    const debug: string[] = [];
    const banners: string[] = [];
    let n = 0;
    c.on('banner', (m) => banners.push(m));
    c.on('error', () => {});
    c.once('close', () => resolve({ debug: debug.join('\n'), banners }));
    c.connect({
      host: '127.0.0.1', port, username: 'root@web', readyTimeout: 60_000, debug: (m) => debug.push(m),
      authHandler: (_methods, _partial, next) => (n++ < attempts ? next({ type: 'password', username: 'root@web', password: 'p'.repeat(size) }) : next(false as unknown as ssh2.AuthenticationType)),
    });
  });
}

describe('SSH before login', () => {
  it('refuses an answer longer than a token with a precise reason and audits it', async () => {
    const r = await bigPasswords(pam.ports.ssh, 17 * 1024, 1);
    expect(r.banners.join('')).toContain('token rejected: longer than 16384 bytes');
    const sam = await pam.token('sam', 'security');
    const audit = JSON.parse((await pam.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string; via?: string; reason?: string }[];
    expect(audit.some((e) => e.type === 'token.rejected' && e.via === 'ssh' && e.reason === 'token too large')).toBe(true);
  }, 60_000);

  it('cuts off a flood of large pre-auth messages at the byte cap, memory flat, and keeps serving', async () => {
    const before = await pam.memory();
    const RAW = 40;
    const REAL = 24;
    const EIGHT_MB = 8 * 1024 * 1024;
    const [raw, real] = await Promise.all([
      Promise.all(Array.from({ length: RAW }, () => rawFlood(pam.ports.ssh, EIGHT_MB))),
      // Each attempt is ~30 KB (ssh2 takes packets up to 35000 bytes): the second one is over the cap.
      Promise.all(Array.from({ length: REAL }, () => bigPasswords(pam.ports.ssh, 30_000, 6))),
    ]);
    const after = await pam.memory();
    console.log(`pam serve VmHWM before ${(before.hwm / 1048576).toFixed(0)} MB, after ${RAW} raw clients streaming IGNORE packets and ${REAL} SSH clients sending 30 KB passwords ${(after.hwm / 1048576).toFixed(0)} MB; raw clients wrote ${raw.map((r) => r.sent).reduce((a, b) => a + b, 0) >> 20} MB in all`);
    // Every real client was told why, in the disconnect, by the cap (not the login deadline).
    for (const r of real) {
      expect(r.debug).toMatch(new RegExp(`Received DISCONNECT \\(2, "sent \\d+ bytes before logging in, over the limit of ${MAX_PREAUTH_SSH_BYTES}"\\)`));
      expect(r.banners.join('')).toContain('longer than 16384 bytes');
    }
    expect(after.hwm - before.hwm).toBeLessThan(48 * 1024 * 1024);

    // Audited per source, rate-limited (the rest counted at the window's end or at stop).
    const sam = await pam.token('sam', 'security');
    const audit = JSON.parse((await pam.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string; via?: string; reason?: string; limit?: number }[];
    const cut = audit.filter((e) => e.type === 'connection.refused' && e.via === 'ssh' && e.reason === 'too many bytes before login');
    expect(cut.length).toBeGreaterThan(0);
    expect(cut[0]!.limit).toBe(MAX_PREAUTH_SSH_BYTES);

    // The proxy still serves a client that behaves: it gets to the token prompt.
    const prompt = await new Promise<string>((resolve, reject) => {
      const c = new ssh2.Client();
      c.on('error', reject);
      c.on('keyboard-interactive', (_n, _i, _l, prompts) => {
        resolve(prompts[0]?.prompt ?? '');
        c.end();
      });
      c.connect({ host: '127.0.0.1', port: pam.ports.ssh, username: 'root@web', tryKeyboard: true, readyTimeout: 60_000 });
    });
    expect(prompt).toBe('IAM token: ');
  }, 50_000);
});
