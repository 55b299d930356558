/**
 * Step-up for privilege at the real targets: a target with `require_mfa` and `max_auth_age`,
 * a scope with `require_mfa`, and an approver role that needs MFA to approve. A password-only
 * token is refused at request, at approval and at every session open, with a message saying
 * what is missing; the target shows that nothing ran.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { runOpenSsh, startSshd, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Identity } from '../../access/identity.types.js';

const run = promisify(execFile);
const ROLE = `pam_mfa_${process.pid}`;
const admin = (sql: string) => run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]);

let sshd: TestSshd;
let cp: TestControlPlane;
let ssh: Listener;
let pg: Listener;
const nowSec = () => Math.floor(Date.now() / 1000);

async function who(user: string, groups: string[], opts: { amr?: string[]; authTime?: number } = {}): Promise<{ token: string; id: Identity }> {
  const token = await cp.deps.dev!.issue(user, groups, opts);
  return { token, id: await cp.deps.identity.verify(token) };
}

beforeAll(async () => {
  sshd = await startSshd();
  await admin(`DROP ROLE IF EXISTS ${ROLE}; SET password_encryption='scram-sha-256'; CREATE ROLE ${ROLE} LOGIN PASSWORD 'mfa-Secret-1'`);
  cp = await startControlPlane({
    targets: [
      { name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow', requireMfa: true, maxAuthAgeMs: 15 * 60_000 },
      { name: 'db', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'prefer', logins: { [ROLE]: { secret: 'db-pw' } }, defaultAction: 'allow' },
    ],
    roles: `roles:
  - name: dba
    groups: [dba]
    can_request:
      - { targets: [db], logins: ["*"], max_duration: 1h, require_mfa: true }
  - name: strict-approver
    groups: [strict]
    can_approve: [admin, dba]
    require_mfa: true
`,
  });
  await cp.setSecret('web-root', sshd.userKey);
  await cp.setSecret('db-pw', 'mfa-Secret-1');
  ssh = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  pg = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await ssh?.close();
  await pg?.close();
  await cp?.close();
  await sshd?.close();
  await admin(`DROP ROLE IF EXISTS ${ROLE}`).catch(() => undefined);
});

describe('MFA for privilege', () => {
  it('refuses a request for an MFA target without MFA, and says what is missing', async () => {
    const alice = await who('alice', ['admins'], { amr: ['pwd'], authTime: nowSec() });
    await expect(cp.deps.access.request(alice.id, { target: 'web', login: 'root', durationMs: 600_000, reason: 'r' }))
      .rejects.toThrow(/requesting root@web needs a multi-factor sign-in \(your token has amr pwd/);
    const stale = await who('alice', ['admins'], { amr: ['otp'], authTime: nowSec() - 3600 });
    await expect(cp.deps.access.request(stale.id, { target: 'web', login: 'root', durationMs: 600_000, reason: 'r' }))
      .rejects.toThrow(/a sign-in within the last 15m \(you signed in 1h/);
    expect((await cp.audit()).filter((e) => e.type === 'request.refused' && e.why === 'mfa required')).toHaveLength(2);
  });

  it('an approver role with require_mfa cannot approve without MFA; with it, can', async () => {
    const alice = await who('alice', ['admins'], { amr: ['pwd', 'otp'], authTime: nowSec() });
    const req = await cp.deps.access.request(alice.id, { target: 'web', login: 'root', durationMs: 600_000, reason: 'incident' });
    const weak = await who('sam', ['strict'], { amr: ['pwd'] });
    await expect(cp.deps.access.approve(weak.id, req.id)).rejects.toThrow(/approving root@web needs a multi-factor sign-in/);
    const strong = await who('sam', ['strict'], { amr: ['hwk'] });
    expect((await cp.deps.access.approve(strong.id, req.id)).status).toBe('approved');
  });

  it('an approver role with require_mfa cannot release a held command without MFA', async () => {
    const alice = await who('alice', ['admins'], { amr: ['otp'] });
    const hold = await cp.deps.holds!.create(alice.id, { kind: 'command', protocol: 'ssh', target: 'web', login: 'root', text: 'reboot', rule: 'r' }, 60_000);
    const waiting = cp.deps.holds!.wait(hold.id);
    await expect(cp.deps.holds!.decide((await who('sam', ['strict'], { amr: ['pwd'] })).id, hold.id, true)).rejects.toThrow(/approving a held command on root@web needs a multi-factor sign-in/);
    await cp.deps.holds!.decide((await who('sam', ['strict'], { amr: ['pwd', 'otp'] })).id, hold.id, true);
    expect(await waiting).toBe('approved');
  });

  it('with a grant, an SSH session opened with a password-only token is refused and runs nothing', async () => {
    const weak = await who('alice', ['admins'], { amr: ['pwd'], authTime: nowSec() });
    const marker = `/tmp/pam-mfa-${process.pid}`;
    const r = await runOpenSsh('ssh', weak.token, ['-o', `Port=${ssh.port}`, '-o', 'User=root@web', '127.0.0.1', `touch ${marker}`]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('opening root@web needs a multi-factor sign-in');
    const { stdout } = await run('sh', ['-c', `test -e ${marker} && echo yes || echo no`]);
    expect(stdout.trim()).toBe('no');
    const good = await who('alice', ['admins'], { amr: ['pwd', 'otp'], authTime: nowSec() });
    const ok = await runOpenSsh('ssh', good.token, ['-o', `Port=${ssh.port}`, '-o', 'User=root@web', '127.0.0.1', 'echo in']);
    expect(ok.stdout).toBe('in\n');
    expect((await cp.audit()).some((e) => e.type === 'session.refused' && e.code === undefined && String(e.why).includes('multi-factor'))).toBe(true);
  });

  it('a scope with require_mfa: the grant carries it, so a later Postgres login without MFA is refused', async () => {
    const bob = await who('bob', ['dba'], { amr: ['mfa'] });
    const req = await cp.deps.access.request(bob.id, { target: 'db', login: ROLE, durationMs: 600_000, reason: 'migration' });
    expect(req.mfa).toEqual({ requireMfa: true });
    const approver = await who('sam', ['strict'], { amr: ['mfa'] });
    await cp.deps.access.approve(approver.id, req.id);
    const weak = await who('bob', ['dba'], { amr: ['pwd'] });
    const psql = (token: string) => run('psql', [`host=127.0.0.1 port=${pg.port} user=${ROLE} dbname=db sslmode=require`, '-XAtc', 'select 42'], { env: { ...process.env, PGPASSWORD: token } })
      .then((r) => ({ code: 0, out: r.stdout, err: r.stderr }), (e) => ({ code: 1, out: String(e.stdout), err: String(e.stderr) }));
    const refused = await psql(weak.token);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`opening ${ROLE}@db needs a multi-factor sign-in`);
    expect((await psql(bob.token)).out.trim()).toBe('42');
  });
});
