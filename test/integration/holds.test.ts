import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';

let cp: TestControlPlane;
beforeEach(async () => { cp = await startControlPlane({ targets: [] }); });
afterEach(async () => { await cp.close(); });

const who = async (user: string, groups: string[]) => cp.deps.identity.verify(await cp.token(user, groups));
const input = { kind: 'command' as const, protocol: 'ssh' as const, target: 'web1', login: 'root', text: 'systemctl restart nginx', rule: 'restarts-need-review' };

describe('review holds', () => {
  it('an approver releases a held command; the holder cannot', async () => {
    const alice = await who('alice', ['admins']);
    const hold = await cp.deps.holds.create(alice, input, 60_000);
    const waiting = cp.deps.holds.wait(hold.id);
    await expect(cp.deps.holds.decide(alice, hold.id, true)).rejects.toMatchObject({ status: 403 });
    await expect(cp.deps.holds.decide(await who('carol', ['admins']), hold.id, true)).rejects.toMatchObject({ status: 403 });
    const sam = await who('sam', ['approvers']);
    expect((await cp.deps.holds.list(sam)).map((h) => h.id)).toContain(hold.id);
    await cp.deps.holds.decide(sam, hold.id, true, 'change ticket 7');
    expect(await waiting).toBe('approved');
    await expect(cp.deps.holds.decide(sam, hold.id, false)).rejects.toMatchObject({ status: 409 });
    const types = (await cp.audit()).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['policy.hold', 'policy.hold.refused', 'policy.hold.approve']));
  });

  it('a refusal or a timeout drops it', async () => {
    const alice = await who('alice', ['admins']);
    const sam = await who('sam', ['approvers']);
    const a = await cp.deps.holds.create(alice, input, 60_000);
    const wa = cp.deps.holds.wait(a.id);
    await cp.deps.holds.decide(sam, a.id, false, 'no');
    expect(await wa).toBe('denied');
    const b = await cp.deps.holds.create(alice, input, 200);
    expect(await cp.deps.holds.wait(b.id)).toBe('expired');
    await expect(cp.deps.holds.decide(sam, b.id, true)).rejects.toMatchObject({ status: 409 });
  });
});
