/**
 * `pam discover` at the real targets: a superuser role created here on the machine's
 * PostgreSQL and a uid-0 account created here on this machine (the test sshd's host), both
 * unknown to the proxy, are listed as privileged and not managed; the vaulted logins are
 * listed as managed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';
import { startHttpServer } from '../../replay-ui/server/http.js';
import type { Listener } from '../../proxy/broker.types.js';

const run = promisify(execFile);
const LOGIN = `pam_disc_${process.pid}`;
const SUPER = `pam_disc_su_${process.pid}`;
const UID0 = `pamdisc${process.pid}`;
const admin = (sql: string) => run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]);

let sshd: TestSshd;
let cp: TestControlPlane;
let http: Listener;

beforeAll(async () => {
  sshd = await startSshd();
  await admin(`DROP ROLE IF EXISTS ${LOGIN}; DROP ROLE IF EXISTS ${SUPER}; CREATE ROLE ${LOGIN} LOGIN PASSWORD 'disc-1'; CREATE ROLE ${SUPER} SUPERUSER NOLOGIN`);
  // A second uid-0 account with no password and no shell: the kind of leftover discovery is for.
  await run('useradd', ['-o', '-u', '0', '-g', '0', '-M', '-N', '-d', '/nonexistent', '-s', '/usr/sbin/nologin', UID0]);
  cp = await startControlPlane({
    targets: [
      { name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' },
      { name: 'db', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'prefer', logins: { [LOGIN]: { secret: 'db-pw' } }, defaultAction: 'allow' },
    ],
  });
  await cp.setSecret('web-root', sshd.userKey);
  await cp.setSecret('db-pw', 'disc-1');
  http = await startHttpServer(cp.deps, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await http?.close();
  await cp?.close();
  await sshd?.close();
  await run('userdel', ['-f', UID0]).catch(() => undefined);
  await admin(`DROP ROLE IF EXISTS ${LOGIN}; DROP ROLE IF EXISTS ${SUPER}`).catch(() => undefined);
});

const discover = async (target: string, token: string) => {
  const res = await fetch(`http://127.0.0.1:${http.port}/api/v1/targets/${target}/discover`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as any };
};

describe('pam discover', () => {
  it('needs can_audit or can_offboard', async () => {
    expect((await discover('db', await cp.token('alice', ['admins']))).status).toBe(403);
  });

  it('lists a superuser role the proxy does not manage', async () => {
    const r = await discover('db', await cp.token('sam', ['approvers']));
    expect(r.status).toBe(200);
    expect(r.body.via).toBe(LOGIN);
    expect(r.body.accounts).toContainEqual({ account: SUPER, privileges: ['superuser', '(no login)'], managed: false });
    expect(r.body.accounts.find((a: { account: string }) => a.account === LOGIN)).toBeUndefined(); // not privileged
    expect((await cp.audit()).some((e) => e.type === 'discover' && e.target === 'db' && (e.unmanaged as string[]).includes(SUPER))).toBe(true);
  });

  it('lists a uid-0 account on the SSH target, through the CLI', async () => {
    const p = spawn('node', ['bin/pam.js', 'discover', 'web', '--json', '--server', `http://127.0.0.1:${http.port}`], { env: { ...process.env, PAM_TOKEN: await cp.token('sam', ['approvers']) } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    expect(await new Promise((r) => p.once('close', r))).toBe(0);
    expect(err).toBe('');
    const r = JSON.parse(out);
    expect(r.accounts).toContainEqual({ account: UID0, privileges: ['uid 0'], managed: false });
    const root = r.accounts.find((a: { account: string }) => a.account === 'root');
    expect(root).toMatchObject({ managed: true });
    expect(root.privileges).toContain('uid 0');
  });
});
