/**
 * Two proxy nodes sharing one Redis store (db 15, cleared before and after): a grant approved on
 * one node opens sessions on the other, and a revocation on one ends the watchers on both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { openControlPlane, type ControlPlane } from '../../app/control-plane.js';
import type { Target } from '../../config/config.types.js';

const URL = 'redis://127.0.0.1:6379/15';
const targets: Target[] = [
  { name: 'web1', protocol: 'ssh', host: '127.0.0.1', port: 22, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 's' } }, defaultAction: 'allow' },
];

let a: TestControlPlane;
let b: ControlPlane;
let raw: Redis;

beforeAll(async () => {
  raw = new Redis(URL);
  await raw.flushdb();
  a = await startControlPlane({ targets, overrides: { store: URL } });
  b = await openControlPlane(a.config);
});
afterAll(async () => {
  await b?.close();
  await a?.close();
  await raw.flushdb();
  raw.disconnect();
});

describe('two nodes on Redis', () => {
  it('shares grants and broadcasts revocation', async () => {
    const alice = await b.identity.verify(await a.token('alice', ['admins']));
    await expect(b.gate.authorize(alice, 'web1', 'root', 'ssh')).rejects.toThrow(/no active grant/);
    const grant = await a.grant('alice', 'web1', 'root');
    const onB = await b.gate.authorize(alice, 'web1', 'root', 'ssh');
    expect(onB.grant.id).toBe(grant.id);
    // The grant is a Redis key that expires by itself.
    const keys = await raw.keys('*grants*');
    expect(keys.length).toBe(1);
    expect(await raw.pttl(keys[0]!)).toBeGreaterThan(0);

    const endedOnB = new Promise<string>((resolve) => b.gate.watchGrant(onB.grant, resolve));
    await a.revoke(grant.id);
    expect(await endedOnB).toMatch(/revoked/);
    await expect(b.gate.authorize(alice, 'web1', 'root', 'ssh')).rejects.toThrow(/no active grant/);
  });

  it('lets only one of two racing approvers create the grant', async () => {
    const alice = await a.deps.identity.verify(await a.token('alice', ['admins']));
    const req = await a.deps.access.request(alice, { target: 'web1', login: 'root', durationMs: 60_000, reason: 'race' });
    const sam = await a.deps.identity.verify(await a.token('sam', ['approvers']));
    const tia = await b.identity.verify(await a.token('tia', ['approvers']));
    const results = await Promise.allSettled([a.deps.access.approve(sam, req.id), b.access.approve(tia, req.id)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.status)).toEqual([409]);
    const grants = (await b.access.listGrants(sam)).filter((g) => g.requestId === req.id);
    expect(grants).toHaveLength(1);
  });
});
