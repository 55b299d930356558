/**
 * Credential rotation at the real targets: PostgreSQL (a private cluster whose TCP logins need
 * a SCRAM password, since the machine's trusts 127.0.0.1) and a real sshd. After a rotation the old password or key no longer opens the target directly,
 * the proxy still does, a session open during the rotation keeps working, and a rotation that
 * cannot reach its target leaves the old credential in the vault and says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import pg from 'pg';
import YAML from 'yaml';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startScramCluster, type ScramCluster } from '../helpers/pg-cluster.js';
import { runOpenSsh, startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';
import { RotationService } from '../../access/rotation.js';

const APP = 'pam_rot_app';
const OWNER = 'pam_rot_owner';
let cluster: ScramCluster;
/** A direct login to PostgreSQL, not through the proxy. */
async function directLogin(user: string, password: string): Promise<boolean> {
  const c = new pg.Client({ host: '127.0.0.1', port: cluster.port, user, password, database: 'postgres' });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}
/** A direct SSH login to the target with a private key. */
function directSsh(sshd: TestSshd, key: string | Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const c = new ssh2.Client();
    c.once('ready', () => { c.end(); resolve(true); });
    c.once('error', () => resolve(false));
    c.connect({ host: sshd.host, port: sshd.port, username: 'root', privateKey: key, readyTimeout: 10_000 });
  });
}

let sshd: TestSshd;
let cp: TestControlPlane;
let ssh: Listener;
let pgb: Listener;
let targets: Target[];

beforeAll(async () => {
  sshd = await startSshd();
  cluster = await startScramCluster();
  await cluster.sql(`CREATE ROLE ${APP} LOGIN PASSWORD 'app-Old-1'; CREATE ROLE ${OWNER} LOGIN CREATEROLE PASSWORD 'own-Old-1'`);
  targets = [
    { name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow', rotation: { afterSession: false, authorizedKeys: join(sshd.dir, 'authorized_keys') } },
    { name: 'db', protocol: 'postgres', host: '127.0.0.1', port: cluster.port, database: 'postgres', tls: 'prefer', logins: { [APP]: { secret: 'db-app' }, [OWNER]: { secret: 'db-owner' } }, defaultAction: 'allow', rotation: { afterSession: false, login: OWNER, everyMs: 86_400_000 } },
    { name: 'webfault', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-fault' } }, defaultAction: 'allow', rotation: { afterSession: false, authorizedKeys: join(sshd.dir, 'not-read-by-sshd') } },
    { name: 'sshgone', protocol: 'ssh', host: '127.0.0.1', port: 9, hostKey: sshd.hostKey, logins: { root: { secret: 'ssh-gone' } }, defaultAction: 'allow' },
    { name: 'gone', protocol: 'postgres', host: '127.0.0.1', port: 1, database: 'postgres', tls: 'disable', logins: { [APP]: { secret: 'gone-app' } }, defaultAction: 'allow' },
  ];
  cp = await startControlPlane({ targets });
  await cp.setSecret('web-root', sshd.userKey);
  await cp.setSecret('db-app', 'app-Old-1');
  await cp.setSecret('db-owner', 'own-Old-1');
  await cp.setSecret('gone-app', 'gone-Old-1');
  await cp.setSecret('web-fault', sshd.userKey);
  await cp.setSecret('ssh-gone', sshd.userKey);
  ssh = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  pgb = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await ssh?.close();
  await pgb?.close();
  await cp?.close();
  await sshd?.close();
  await cluster?.close();
});

describe('pam secret rotate: Postgres', () => {
  it('sets a new SCRAM password through the rotation login; the old one stops working, the proxy keeps working', async () => {
    // The direct check means something only if a wrong password is refused.
    expect(await directLogin(APP, 'certainly-wrong')).toBe(false);
    expect(await directLogin(APP, 'app-Old-1')).toBe(true);
    await cp.grant('alice', 'db', APP);
    const token = await cp.token('alice');
    const live = new pg.Client({ host: '127.0.0.1', port: pgb.port, user: APP, database: 'db', password: token, ssl: { rejectUnauthorized: false } });
    await live.connect();

    const r = await cp.deps.rotation.rotate('db-app', 'test');
    expect(r).toEqual({ secret: 'db-app', ok: true });
    const next = (await cp.deps.vault.reveal('db-app')).toString();
    expect(next).not.toBe('app-Old-1');
    expect((await cluster.sql(`SELECT rolpassword LIKE 'SCRAM-SHA-256$4096:%' FROM pg_authid WHERE rolname = '${APP}'`)).trim()).toBe('t');
    expect(await directLogin(APP, 'app-Old-1')).toBe(false);
    expect(await directLogin(APP, next)).toBe(true);
    // The session opened before the rotation still works; a new one through the proxy too.
    expect((await live.query('select 7 as n')).rows[0].n).toBe(7);
    await live.end();
    const fresh = new pg.Client({ host: '127.0.0.1', port: pgb.port, user: APP, database: 'db', password: token, ssl: { rejectUnauthorized: false } });
    await fresh.connect();
    expect((await fresh.query('select current_user as u')).rows[0].u).toBe(APP);
    await fresh.end();

    const audit = await cp.audit();
    const entry = audit.find((e) => e.type === 'secret.rotate' && e.name === 'db-app');
    expect(entry).toMatchObject({ target: 'db', login: APP, via: OWNER });
    expect(JSON.stringify(audit)).not.toContain(next);
    const status = (await cp.deps.rotation.status()).find((s) => s.name === 'db-app')!;
    expect(status.lastRotated).toBeDefined();
    expect(Date.parse(status.nextDue!) - Date.parse(status.lastRotated!)).toBe(86_400_000);
  });

  it('recovers from a rotation that died between the vault write and COMMIT', async () => {
    // The state such a crash leaves: the vault holds a password the server never got, with the
    // real one kept as the previous value.
    const real = await cp.deps.vault.reveal('db-app');
    await cp.deps.vault.set('db-app', Buffer.from('never-committed-1'), { rotated: true, keepPrevious: real });
    expect(await directLogin(APP, 'never-committed-1')).toBe(false);
    const r = await cp.deps.rotation.rotate('db-app', 'test');
    expect(r).toEqual({ secret: 'db-app', ok: true });
    expect((await cp.audit()).some((e) => e.type === 'secret.rotate.recovered' && e.name === 'db-app')).toBe(true);
    const next = (await cp.deps.vault.reveal('db-app')).toString();
    expect(await directLogin(APP, next)).toBe(true);
    expect(await directLogin(APP, real.toString())).toBe(false);
    expect(await cp.deps.vault.revealPrevious('db-app')).toBeUndefined();
  });

  it('with the target down, fails with a reason and keeps the old credential in the vault', async () => {
    const r = await cp.deps.rotation.rotate('gone-app', 'test');
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/rotation at .*@gone failed, the old credential stays valid: cannot log in to gone/);
    expect((await cp.deps.vault.reveal('gone-app')).toString()).toBe('gone-Old-1');
    const status = (await cp.deps.rotation.status()).find((s) => s.name === 'gone-app')!;
    expect(status.lastError).toMatch(/cannot log in to gone/);
    expect(status.lastRotated).toBeUndefined();
  });
});

describe('rotation on schedule and after sessions', () => {
  it('rotates a login after its session ends when the target says after_session, and lists every-due secrets', async () => {
    const db = targets.find((t) => t.name === 'db')!;
    db.rotation = { ...db.rotation!, afterSession: true };
    const stop = cp.deps.rotation.startSchedule(cp.deps.sessions, { tickMs: 3600_000 });
    try {
      const before = (await cp.deps.vault.reveal('db-app')).toString();
      await cp.grant('carol', 'db', APP);
      const c = new pg.Client({ host: '127.0.0.1', port: pgb.port, user: APP, database: 'db', password: await cp.token('carol'), ssl: { rejectUnauthorized: false } });
      await c.connect();
      await c.query('select 1');
      await c.end();
      const entry = await waitFor(async () => (await cp.audit()).find((e) => e.type === 'secret.rotate' && e.name === 'db-app' && String(e.why).startsWith('after session')), 'the after-session rotation');
      expect(entry.actor).toBe('schedule');
      const after = (await cp.deps.vault.reveal('db-app')).toString();
      expect(after).not.toBe(before);
      expect(await directLogin(APP, before)).toBe(false);
      expect(await directLogin(APP, after)).toBe(true);
    } finally {
      stop();
      db.rotation = { ...db.rotation!, afterSession: false };
    }
    // `every: 24h` on db: a day later both of its secrets are due, nothing else is.
    const later = new RotationService({
      vault: cp.deps.vault, targets: () => targets, rotators: {}, audit: cp.deps.audit, now: () => Date.now() + 86_400_000 + 60_000,
    });
    expect((await later.due()).sort()).toEqual(['db-app', 'db-owner']);
  });
});

describe('SSH rotation failures leave the old key working', () => {
  it('a keys file sshd does not read: the new key is proven useless, taken out again, the vault keeps the old key', async () => {
    const r = await cp.deps.rotation.rotate('web-fault', 'test');
    // The fault fired: the new key was written where sshd does not look, and did not log in.
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/the new key was added to .*not-read-by-sshd but does not log in .*; removed it again/);
    expect((await readFile(join(sshd.dir, 'not-read-by-sshd'), 'utf8')).trim()).toBe('');
    expect((await cp.deps.vault.reveal('web-fault')).toString()).toBe(sshd.userKey);
    expect(await directSsh(sshd, sshd.userKey)).toBe(true);
  });

  it('a target that is down: nothing changes and the reason is kept', async () => {
    const r = await cp.deps.rotation.rotate('ssh-gone', 'test');
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/cannot log in to sshgone as root/);
    expect((await cp.deps.vault.reveal('ssh-gone')).toString()).toBe(sshd.userKey);
    expect((await cp.deps.rotation.status()).find((s) => s.name === 'ssh-gone')?.lastError).toMatch(/cannot log in to sshgone/);
  });
});

describe('pam secret rotate: SSH (the CLI)', () => {
  it('replaces the key in authorized_keys: the old key no longer logs in, the proxy still does', async () => {
    const oldKey = sshd.userKey;
    expect(await directSsh(sshd, oldKey)).toBe(true);
    const configFile = join(cp.dataDir, 'pam.yaml');
    await writeFile(configFile, YAML.stringify({
      listen: { http: '127.0.0.1:1' }, data_dir: cp.dataDir, policies_dir: join(cp.dataDir, 'policies'), identity: { dev: true },
      targets: [{ name: 'web', protocol: 'ssh', address: `${sshd.host}:${sshd.port}`, host_key: sshd.hostKey, logins: { root: { secret: 'web-root' } }, rotation: { authorized_keys: join(sshd.dir, 'authorized_keys') } }],
    }));
    const cli = (args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn('node', ['bin/pam.js', ...args, '--config', configFile]);
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.once('close', (code) => resolve({ code, out, err }));
    });
    const rotated = await cli(['secret', 'rotate', 'web-root']);
    expect(rotated.err).toBe('');
    expect(rotated.out).toContain('rotated web-root');

    expect(await directSsh(sshd, oldKey)).toBe(false);
    const newKey = await cp.deps.vault.reveal('web-root');
    expect(newKey.toString()).toContain('OPENSSH PRIVATE KEY');
    expect(await directSsh(sshd, newKey)).toBe(true);
    const lines = (await readFile(join(sshd.dir, 'authorized_keys'), 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ssh-ed25519 \S+ pam-proxy:web-root$/);

    await cp.grant('bob', 'web', 'root');
    const through = await runOpenSsh('ssh', await cp.token('bob'), ['-o', `Port=${ssh.port}`, '-o', 'User=root@web', '127.0.0.1', 'echo via-proxy']);
    expect(through.stdout).toBe('via-proxy\n');

    const list = await cli(['secret', 'list']);
    expect(list.out).toMatch(/web-root\s+root@web\s+20\d\d-/);
  });
});
