import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import type { Target } from '../../config/config.types.js';
import { AccessDenied } from '../../access/access.types.js';

const targets: Target[] = [
  { name: 'appdb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'disable', logins: { app_rw: { secret: 's1' } }, defaultAction: 'allow' },
  { name: 'web1', protocol: 'ssh', host: '127.0.0.1', port: 22, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 's2' } }, defaultAction: 'allow' },
];

const ROLES = `roles:
  - name: dba
    groups: [dba]
    can_request:
      - { targets: [appdb], logins: [app_rw], max_duration: 1h }
  - name: sre-lead
    groups: [sre-lead]
    can_approve: [sre]
`;

let cp: TestControlPlane;
beforeEach(async () => { cp = await startControlPlane({ targets, roles: ROLES }); });
afterEach(async () => { await cp.close(); });

const who = async (user: string, groups: string[]) => cp.deps.identity.verify(await cp.token(user, groups));

describe('JIT access', () => {
  it('request → approval → grant → authorize, and revocation ends it', async () => {
    const dana = await who('dana', ['dba']);
    const sec = await who('sam', ['approvers']);
    await expect(cp.deps.gate.authorize(dana, 'appdb', 'app_rw', 'postgres')).rejects.toThrow(/pam request --target appdb --login app_rw/);
    const req = await cp.deps.access.request(dana, { target: 'appdb', login: 'app_rw', durationMs: 30 * 60_000, reason: 'INC-42' });
    expect(req.status).toBe('pending');
    // The test approver role approves `admin`, not `dba`: refused.
    await expect(cp.deps.access.approve(sec, req.id)).rejects.toThrow(/none of your roles may approve/);
  });

  it('approves across roles, refuses self-approval and roles not allowed, caps duration', async () => {
    const alice = await who('alice', ['admins', 'approvers']);
    const bob = await who('bob', ['approvers']);
    const lead = await who('lee', ['sre-lead']);
    const req = await cp.deps.access.request(alice, { target: 'web1', login: 'root', durationMs: 60_000, reason: 'patching' });
    await expect(cp.deps.access.approve(alice, req.id)).rejects.toMatchObject({ status: 403, message: /own request/ });
    await expect(cp.deps.access.approve(lead, req.id)).rejects.toMatchObject({ status: 403 });
    const approved = await cp.deps.access.approve(bob, req.id, 'ok');
    expect(approved.status).toBe('approved');
    await expect(cp.deps.access.approve(bob, req.id)).rejects.toMatchObject({ status: 409 });
    const auth = await cp.deps.gate.authorize(alice, 'web1', 'root', 'ssh');
    expect(auth.grant.id).toBe(approved.grantId);
    expect(auth.grant.expiresAt - auth.grant.startsAt).toBe(60_000);
    // A grant for web1/root does not open another login, target or protocol.
    await expect(cp.deps.gate.authorize(alice, 'appdb', 'app_rw', 'postgres')).rejects.toBeInstanceOf(AccessDenied);
    await expect(cp.deps.gate.authorize(alice, 'web1', 'root', 'postgres')).rejects.toThrow(/unknown postgres target/);

    const dana = await who('dana', ['dba']);
    await expect(cp.deps.access.request(dana, { target: 'appdb', login: 'app_rw', durationMs: 2 * 3600_000, reason: 'x' })).rejects.toThrow(/above the maximum 1h/);
    await expect(cp.deps.access.request(dana, { target: 'web1', login: 'root', durationMs: 60_000, reason: 'x' })).rejects.toMatchObject({ status: 403 });

    const types = (await cp.audit()).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['request', 'approve.refused', 'approve', 'grant', 'session.refused', 'request.refused']));
  });

  it('observes expiry and revocation through watchGrant', async () => {
    const alice = await who('alice', ['admins']);
    const short = await cp.grant('alice', 'web1', 'root', 1500);
    const ended = await new Promise<string>((resolve) => cp.deps.gate.watchGrant(short, resolve));
    expect(ended).toMatch(/expired/);
    await expect(cp.deps.gate.authorize(alice, 'web1', 'root', 'ssh')).rejects.toThrow(/no active grant/);

    const long = await cp.grant('alice', 'web1', 'root');
    const revoked = new Promise<string>((resolve) => cp.deps.gate.watchGrant(long, resolve));
    const carol = await who('carol', ['admins']);
    await expect(cp.deps.access.revoke(carol, long.id)).rejects.toMatchObject({ status: 403 });
    await cp.revoke(long.id);
    expect(await revoked).toMatch(/revoked by approver-bot/);
    await expect(cp.deps.gate.authorize(alice, 'web1', 'root', 'ssh')).rejects.toThrow(/no active grant/);
  });

  it('lets holders see their own grants and overseers all', async () => {
    await cp.grant('alice', 'web1', 'root');
    await cp.grant('carol', 'web1', 'root');
    const alice = await who('alice', ['admins']);
    expect((await cp.deps.access.listGrants(alice)).map((g) => g.user)).toEqual(['alice']);
    const sam = await who('sam', ['approvers']);
    expect((await cp.deps.access.listGrants(sam)).map((g) => g.user).sort()).toEqual(['alice', 'carol']);
  });
});
