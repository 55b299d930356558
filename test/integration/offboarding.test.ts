/**
 * `pam offboard` at the real targets: a person with a live SSH session (real sshd) and a live
 * Postgres session (the machine's PostgreSQL), a pending request, a second grant and a bound
 * SSH key is offboarded through the HTTP API. Both sessions end, the still-valid token is
 * refused everywhere (API, SSH, Postgres), and one audit entry lists what was done.
 */
import { generateEd25519 } from '../../proxy/ssh/ed25519-keygen.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import pg from 'pg';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { bindKeyWithProof } from '../helpers/key-binding.js';
import { runOpenSsh, startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import { startHttpServer } from '../../replay-ui/server/http.js';
import type { Listener } from '../../proxy/broker.types.js';

const run = promisify(execFile);
const ROLE = `pam_off_${process.pid}`;
const admin = (sql: string) => run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]);

let sshd: TestSshd;
let cp: TestControlPlane;
let ssh: Listener;
let pgb: Listener;
let http: Listener;

beforeAll(async () => {
  sshd = await startSshd();
  await admin(`DROP ROLE IF EXISTS ${ROLE}; SET password_encryption='scram-sha-256'; CREATE ROLE ${ROLE} LOGIN PASSWORD 'off-Secret-1'`);
  cp = await startControlPlane({
    targets: [
      { name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow', rotation: { afterSession: false, authorizedKeys: join(sshd.dir, 'authorized_keys') } },
      { name: 'db', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'prefer', logins: { [ROLE]: { secret: 'db-pw' } }, defaultAction: 'allow' },
    ],
    roles: `roles:
  - name: security
    groups: [security]
    can_offboard: true
`,
  });
  await cp.setSecret('web-root', sshd.userKey);
  await cp.setSecret('db-pw', 'off-Secret-1');
  ssh = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 }, { keys: cp.deps.sshKeys });
  pgb = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  http = await startHttpServer(cp.deps, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await http?.close();
  await ssh?.close();
  await pgb?.close();
  await cp?.close();
  await sshd?.close();
  await admin(`DROP ROLE IF EXISTS ${ROLE}`).catch(() => undefined);
});

const api = async (method: string, path: string, token: string, body?: unknown) => {
  const res = await fetch(`http://127.0.0.1:${http.port}${path}`, {
    method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
};

function openSsh(token: string): Promise<{ client: ssh2.Client; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    client.once('ready', () => resolve({ client, closed }));
    client.once('error', reject);
    client.connect({ host: '127.0.0.1', port: ssh.port, username: 'root@web', password: token });
  });
}

describe('pam offboard', () => {
  it('needs an approver or can_offboard role', async () => {
    const r = await api('POST', '/api/v1/offboard', await cp.token('mallory', ['admins']), { user: 'alice', reason: 'x' });
    expect(r.status).toBe(403);
    expect(r.body.error.message).toMatch(/can_approve or can_offboard/);
  });

  it('ends live SSH and Postgres sessions, refuses the valid token everywhere and audits one entry', async () => {
    const token = await cp.deps.dev!.issue('alice', ['admins'], { email: 'alice@example.com', subject: 'sub-alice' });
    const alice = await cp.deps.identity.verify(token);
    for (const [t, l] of [['web', 'root'], ['db', ROLE]] as const) {
      const req = await cp.deps.access.request(alice, { target: t, login: l, durationMs: 3600_000, reason: 'work' });
      await cp.deps.access.approve(await cp.deps.identity.verify(await cp.token('sam', ['approvers'])), req.id);
    }
    const pending = await cp.deps.access.request(alice, { target: 'web', login: 'root', durationMs: 600_000, reason: 'later' });
    const pair = generateEd25519();
    const bound = await bindKeyWithProof(cp.deps.sshKeys, alice, pair);
    const byKey = (privateKey: string) => new Promise<boolean>((resolve) => {
      const c = new ssh2.Client();
      c.once('ready', () => { c.end(); resolve(true); });
      c.once('error', () => resolve(false));
      c.connect({ host: '127.0.0.1', port: ssh.port, username: 'root@web', privateKey });
    });
    expect(await byKey(pair.private)).toBe(true);

    const { client, closed } = await openSsh(token);
    let out = '';
    client.exec('echo started; sleep 120; echo not-killed', (_err, ch) => {
      ch.on('data', (d: Buffer) => (out += d.toString()));
    });
    await waitFor(() => out.includes('started'), 'the remote command to start');
    const db = new pg.Client({ host: '127.0.0.1', port: pgb.port, user: ROLE, database: 'db', password: token, ssl: { rejectUnauthorized: false } });
    await db.connect();
    const dbEnded = new Promise<void>((r) => db.once('end', () => r()));
    db.on('error', () => {});
    expect((await db.query('select 1 as x')).rows[0].x).toBe(1);
    await waitFor(() => cp.deps.sessions.list().length === 2, 'two live sessions');

    const r = await api('POST', '/api/v1/offboard', await cp.token('sec', ['security']), { user: 'alice@example.com', reason: 'left the company' });
    expect(r.status).toBe(200);
    expect(r.body.subjects).toContain('sub-alice');
    expect(r.body.grantsRevoked).toHaveLength(2);
    expect(r.body.requestsDenied).toEqual([pending.id]);
    expect(r.body.sessionsEnded).toHaveLength(2);
    expect(r.body.keyBindingsRemoved).toEqual([bound.fingerprint]);
    // Both credentials alice used were rotated: the SSH key she could have copied is dead.
    expect(r.body.credentialsRotated).toEqual([{ secret: 'db-pw', ok: true }, { secret: 'web-root', ok: true }]);
    const oldKeyWorks = await new Promise<boolean>((resolve) => {
      const c = new ssh2.Client();
      c.once('ready', () => { c.end(); resolve(true); });
      c.once('error', () => resolve(false));
      c.connect({ host: sshd.host, port: sshd.port, username: 'root', privateKey: sshd.userKey });
    });
    expect(oldKeyWorks).toBe(false);

    await closed;
    await dbEnded;
    expect(out).not.toContain('not-killed');
    expect(cp.deps.sessions.list()).toHaveLength(0);

    // The same token, still within its lifetime, is refused by the API, SSH and Postgres.
    const who = await api('GET', '/api/v1/whoami', token);
    expect(who.status).toBe(401);
    expect(who.body.error.message).toMatch(/offboarded/);
    const sshAgain = await runOpenSsh('ssh', token, ['-o', `Port=${ssh.port}`, '-o', 'User=root@web', '127.0.0.1', 'true']);
    expect(sshAgain.code).toBe(255);
    expect(sshAgain.stderr).toMatch(/offboarded/);
    const db2 = new pg.Client({ host: '127.0.0.1', port: pgb.port, user: ROLE, database: 'db', password: token, ssl: { rejectUnauthorized: false } });
    await expect(db2.connect()).rejects.toThrow(/offboarded/);
    expect(await byKey(pair.private)).toBe(false);
    // Even a fresh grant (say, approved by mistake) opens nothing for the person's identity.
    await expect(cp.deps.gate.authorize(alice, 'web', 'root', 'ssh')).rejects.toThrow(/offboarded/);

    const entries = (await cp.audit()).filter((e) => e.type === 'offboard');
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ actor: 'sec', user: 'alice@example.com', reason: 'left the company', requestsDenied: [pending.id] });
    expect(entries[0]!.grantsRevoked).toHaveLength(2);
    expect(entries[0]!.credentialsRotated).toHaveLength(2);
    expect(JSON.stringify(entries[0])).not.toContain(token);
  });

  it('works from the CLI and says what it did', async () => {
    await cp.grant('bob', 'web', 'root');
    const p = spawn('node', ['bin/pam.js', 'offboard', 'bob', '--reason', 'moved teams', '--server', `http://127.0.0.1:${http.port}`], { env: { ...process.env, PAM_TOKEN: await cp.token('sec', ['security']) } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    expect(await new Promise((r) => p.once('close', r))).toBe(0);
    expect(err).toBe('');
    expect(out).toMatch(/^offboarded bob/);
    expect(out).toMatch(/grants revoked: gr_[0-9a-f]{16}/);
    expect(out).toContain('credentials rotated: none');
    // While offboarded, even a token issued afterwards is refused.
    await expect(cp.deps.identity.verify(await cp.token('bob'))).rejects.toThrow(/offboarded/);
  });
});
