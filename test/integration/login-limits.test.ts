/**
 * Limits before login (issue 12) on the real `pam serve` process: connections that never log in
 * are closed after `login_timeout` on the SSH and Postgres ports; one source gets at most
 * `max_unauthenticated_per_source` of them; a flood of clients sending 8 MB "passwords" is
 * refused at the message header, and the process's peak RSS (VmHWM from /proc) stays flat.
 * No wall-clock assertion: the test timeout bounds every wait.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';
import { waitFor } from '../helpers/sshd.js';

const run = promisify(execFile);
let pam: PamProcess;

/** A Postgres StartupMessage (protocol 3.0) for `user`/`database`. */
function startup(user: string, database: string): Buffer {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0database\0${database}\0\0`)]);
  const len = Buffer.alloc(4);
  len.writeInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}

interface Probe { socket: Socket; received: () => Buffer; closed: Promise<void> }

function open(port: number): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(chunks), closed }));
    socket.once('error', reject);
  });
}

beforeAll(async () => {
  pam = await startPamProcess({
    roles: 'roles:\n  - name: admin\n    groups: [admins]\n    can_request: [{ targets: ["*"], logins: ["*"], max_duration: 1h }]\n  - name: auditor\n    groups: [auditors]\n    can_audit: true\n',
    extra: `login_timeout: 2s
max_unauthenticated_per_source: 64
targets:
  - name: appdb
    protocol: postgres
    address: "127.0.0.1:5432"
    database: postgres
    tls: disable
    logins: { postgres: { secret: appdb-pg } }
`,
  });
}, 60_000);

afterAll(async () => {
  await pam?.stop();
});

describe('limits before login', () => {
  it('closes connections that do not log in within login_timeout, on both ports', async () => {
    // Silent TCP clients: no SSH version line, no Postgres startup packet.
    const silentSsh = await open(pam.ports.ssh);
    const silentPg = await open(pam.ports.pg);
    // A Postgres client that stops at the password prompt is told why.
    const stalledPg = await open(pam.ports.pg);
    stalledPg.socket.write(startup('postgres', 'appdb'));
    // An SSH client that completes the handshake and sits at the token prompt; ssh2's debug
    // output shows the DISCONNECT it receives (OpenSSH prints the same description).
    const debug: string[] = [];
    const sshClosed = new Promise<void>((resolve) => {
      const c = new ssh2.Client();
      c.on('keyboard-interactive', () => { /* never answers */ });
      c.on('error', () => {});
      c.once('close', () => resolve());
      c.connect({ host: '127.0.0.1', port: pam.ports.ssh, username: 'root@web', tryKeyboard: true, readyTimeout: 60_000, debug: (m) => debug.push(m) });
    });
    await Promise.all([silentSsh.closed, silentPg.closed, stalledPg.closed, sshClosed]);
    expect(stalledPg.received().toString('latin1')).toContain('login timeout: authenticate within 2s');
    expect(stalledPg.received().toString('latin1')).toContain('C08006');
    expect(debug.join('\n')).toContain('Received DISCONNECT (11, "login timeout: authenticate within 2s")');
    // A silent SSH client got the proxy's version line and nothing more.
    expect(silentSsh.received().toString('latin1')).toMatch(/^SSH-2\.0-pam-proxy/);
  }, 60_000);

  it('refuses one source more than max_unauthenticated_per_source waiting connections, then serves it again', async () => {
    const idle = await Promise.all(Array.from({ length: 64 }, () => open(pam.ports.pg)));
    const extra = await open(pam.ports.pg);
    await extra.closed;
    expect(extra.received().toString('latin1')).toContain('C53300');
    expect(extra.received().toString('latin1')).toContain('too many connections from your address');
    // The cap spans both ports: the SSH port drops this source too, before any key exchange.
    const sshExtra = await open(pam.ports.ssh);
    sshExtra.socket.write('SSH-2.0-OpenSSH_9.2\r\n');
    await sshExtra.closed;
    expect(sshExtra.received().toString('latin1')).not.toContain('curve25519');
    for (const p of idle) p.socket.destroy();
    await Promise.all(idle.map((p) => p.closed));
    // The proxy keeps serving: a real psql with a valid token gets as far as the grant check.
    const token = (await pam.pam(['dev', 'token', 'dana', '--groups', 'admins'])).stdout.trim();
    const r = await waitFor(async () => {
      const out = await run('psql', [`host=127.0.0.1 port=${pam.ports.pg} dbname=appdb user=postgres`, '-c', 'select 1'], { env: { ...process.env, PGPASSWORD: token } }).catch((e: { stderr: string }) => e);
      return /pam request --target appdb/.test(out.stderr) ? out : undefined;
    }, 'a login attempt to reach the grant check');
    expect(r.stderr).not.toContain('53300');
    // Audited, rate-limited like refused tokens (access/rejection-audit.ts).
    const sam = (await pam.pam(['dev', 'token', 'sam', '--groups', 'auditors'])).stdout.trim();
    const audit = JSON.parse((await pam.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string; via?: string }[];
    expect(audit.filter((e) => e.type === 'connection.refused').map((e) => e.via).sort()).toEqual(['postgres', 'ssh']);
  }, 60_000);

  it('refuses a flood of 8 MB pre-auth messages at the header and keeps memory flat', async () => {
    const before = await pam.memory();
    const CLIENTS = 48;
    const EIGHT_MB = 8 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const flood = await Promise.all(Array.from({ length: CLIENTS }, async () => {
      const p = await open(pam.ports.pg);
      p.socket.write(startup('postgres', 'appdb'));
      // PasswordMessage header claiming 8 MB, then the bytes, as fast as the socket takes them.
      const hdr = Buffer.alloc(5);
      hdr[0] = 0x70;
      hdr.writeInt32BE(EIGHT_MB + 4, 1);
      p.socket.write(hdr);
      let sent = 0;
      const pump = () => {
        while (sent < EIGHT_MB && !p.socket.destroyed) {
          sent += chunk.length;
          if (!p.socket.write(chunk)) return void p.socket.once('drain', pump);
        }
      };
      pump();
      return p;
    }));
    await Promise.all(flood.map((p) => p.closed));
    for (const p of flood) expect(p.received().toString("latin1").replace(/\0/g, " ")).toMatch(/C54000[\s\S]*over the limit of 17408/);
    const after = await pam.memory();
    console.log(`pam serve VmHWM before ${(before.hwm / 1048576).toFixed(0)} MB, after ${CLIENTS} x 8 MB pre-auth messages ${(after.hwm / 1048576).toFixed(0)} MB (2 shared cores)`);
    // Buffering them would take CLIENTS x 8 MB = 384 MB; allow noise, not that.
    expect(after.hwm - before.hwm).toBeLessThan(48 * 1024 * 1024);
  }, 120_000);
});
