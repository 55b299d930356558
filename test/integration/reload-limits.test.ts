/**
 * SIGHUP to a real `pam serve` changes the login and HTTP limits in place (issue 12, app/reload.ts):
 * `max_unauthenticated_per_source` and `login_timeout` for the next connections (one already
 * waiting keeps its slot), `http.max_body_bytes`, `http.headers_timeout` and the Host check's
 * `public_url`. Each is observed at the sockets before and after, not read back from the config.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { startPamProcess, PROCESS_ROLES, type PamProcess } from '../helpers/pam-process.js';
import { waitFor } from '../helpers/sshd.js';

let pam: PamProcess;

const BEFORE = `login_timeout: 60s
max_unauthenticated_per_source: 2
http: { max_body_bytes: 2048, headers_timeout: 60s, request_timeout: 120s }
`;

beforeAll(async () => {
  pam = await startPamProcess({ roles: PROCESS_ROLES, extra: BEFORE });
}, 60_000);

afterAll(async () => {
  await pam?.stop();
});

interface Probe { socket: Socket; received: () => string; closed: Promise<void> }

/** A TCP client that sends `first` (if any) and collects what comes back. */
function open(port: number, first?: string): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => {
      if (first) socket.write(first);
      resolve({ socket, received: () => text, closed });
    });
    socket.once('error', reject);
  });
}

/** An SSH client admitted past the per-source cap gets the proxy's KEXINIT; a refused one is dropped first. */
async function sshAdmitted(): Promise<Probe | undefined> {
  const p = await open(pam.ports.ssh, 'SSH-2.0-OpenSSH_9.2\r\n');
  let closed = false;
  void p.closed.then(() => (closed = true));
  await waitFor(() => p.received().includes('curve25519') || closed, 'the proxy KEXINIT or a close', 2400);
  return p.received().includes('curve25519') ? p : undefined;
}

const post = (path: string, token: string, bytes: number) => fetch(pam.server + path, {
  method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  body: JSON.stringify({ target: 'x', login: 'y', duration: '1h', reason: 'r'.repeat(bytes) }),
});

function hostAnswer(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(pam.ports.http, '127.0.0.1', () => s.write(`GET /auth/info HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    let text = '';
    s.on('data', (d) => (text += d));
    s.once('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1])));
    s.once('error', reject);
  });
}

describe('SIGHUP reloads the login and HTTP limits', () => {
  it('applies the new limits to the next connections, without a restart', async () => {
    const token = await pam.token('dana', 'dba');
    const foreign = `pam.example:${pam.ports.http}`;
    // Before: two waiting SSH connections fill this source's slots; a third is dropped.
    const waiting = [await sshAdmitted(), await sshAdmitted()];
    expect(waiting.every(Boolean)).toBe(true);
    expect(await sshAdmitted()).toBeUndefined();
    const big = await post('/api/v1/requests', token, 4000);
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { message: string } }).error.message).toContain('over the limit of 2048 bytes');
    expect(await hostAnswer(foreign)).toBe(421);

    const good = await readFile(pam.configFile, 'utf8');
    await writeFile(pam.configFile, good.replace(BEFORE, `login_timeout: 2s
max_unauthenticated_per_source: 8
http: { max_body_bytes: 65536, headers_timeout: 2s, request_timeout: 120s }
public_url: "http://${foreign}"
`));
    pam.proc.kill('SIGHUP');
    await waitFor(() => pam.stdout().includes('configuration reloaded'), 'the reload line');
    const line = JSON.parse(pam.stdout().split('\n').find((l) => l.includes('configuration reloaded'))!) as { changed: string[] };
    expect(line.changed.sort()).toEqual(['http.headers_timeout', 'http.max_body_bytes', 'login_timeout', 'max_unauthenticated_per_source', 'public_url']);
    expect(pam.stdout()).not.toContain('take effect only after a restart');

    // The two that were waiting keep their slots; the source now has room for six more.
    const more = await Promise.all(Array.from({ length: 6 }, () => sshAdmitted()));
    expect(more.every(Boolean)).toBe(true);
    for (const p of [...waiting, ...more]) p!.socket.destroy();
    // A new SSH client at the token prompt is ended by the new login_timeout, and told so. The
    // proxy frees the eight slots when it sees those sockets close, which can come after this
    // client's connect: a connection refused by the cap (reset before the server's ident) is retried.
    const attempt = () => new Promise<string[]>((resolve) => {
      const debug: string[] = [];
      const c = new ssh2.Client();
      c.on('keyboard-interactive', () => { /* never answers */ });
      c.on('error', () => {});
      c.once('close', () => resolve(debug));
      c.connect({ host: '127.0.0.1', port: pam.ports.ssh, username: 'root@web', tryKeyboard: true, readyTimeout: 60_000, debug: (m) => debug.push(m) });
    });
    let debug = await attempt();
    for (let i = 0; i < 10 && !debug.some((m) => m.startsWith('Remote ident')); i++) debug = await attempt();
    expect(debug.join('\n')).toContain('Received DISCONNECT (11, "login timeout: authenticate within 2s")');
    // The body limit: the same request is now read (and refused for what it says, not its size).
    const read = await post('/api/v1/requests', token, 4000);
    expect(read.status).toBe(400);
    expect(((await read.json()) as { error: { message: string } }).error.message).not.toContain('over the limit');
    // headers_timeout: a client that never finishes its headers gets 408 and is closed.
    const slow = await open(pam.ports.http, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${pam.ports.http}\r\n`);
    await slow.closed;
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408/);
    // The Host check now serves public_url's host.
    expect(await hostAnswer(foreign)).toBe(200);
  }, 50_000);
});
