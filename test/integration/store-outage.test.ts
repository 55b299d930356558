/**
 * A store outage is a typed condition (issue 12). `pam serve` as its own process on a Redis of
 * the test's own: the Redis is killed (the fault, checked to have fired by the proxy's own
 * answer changing) and started again on the same port. While it is down the API answers 503
 * `unavailable` with the fixed message, the log gets one line per state change (not one per
 * reconnect attempt, no stack), and the proxy recovers by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';
import { privateRedis, type PrivateRedis } from '../helpers/redis-private.js';
import { waitFor } from '../helpers/sshd.js';

let redis: PrivateRedis;
let pam: PamProcess;
let token: string;

const grants = async () => {
  const r = await fetch(`${pam.server}/api/v1/grants`, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as { error?: { code: string; message: string } }, retryAfter: r.headers.get('retry-after') };
};

beforeAll(async () => {
  redis = await privateRedis();
  pam = await startPamProcess({ roles: 'roles:\n  - name: security\n    groups: [security]\n    can_audit: true\n', store: `${redis.url}/0` });
  token = (await pam.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
}, 60_000);

afterAll(async () => {
  await pam?.stop();
  await redis?.stop();
});

describe('store outage', () => {
  it('answers 503 unavailable while the store is down, logs each change once, and recovers by itself', async () => {
    expect((await grants()).status).toBe(200);
    await redis.stop();
    const down = await waitFor(async () => {
      const g = await grants();
      return g.status === 503 ? g : undefined;
    }, 'the API to notice the outage');
    expect(down.body.error).toEqual({ code: 'unavailable', message: 'the access store is unavailable, try again' });
    expect(down.retryAfter).toBe('5');
    // Many calls during the outage: each one answered the same way, quickly refused.
    for (let i = 0; i < 20; i++) expect((await grants()).status).toBe(503);
    // The bearer check does not need the store: a bad token is still a 401, not a 503.
    expect((await fetch(`${pam.server}/api/v1/grants`, { headers: { authorization: 'Bearer x.y.z' } })).status).toBe(401);
    // Let ioredis retry a few times in the background: still one line.
    await new Promise((r) => setTimeout(r, 1500));
    await redis.start();
    await waitFor(async () => (await grants()).status === 200, 'the API to recover', 1200);
    const log = pam.log();
    expect(log.match(/state store unavailable/g)).toHaveLength(1);
    expect(log.match(/state store available again/g)).toHaveLength(1);
    expect(log).not.toMatch(/\s+at [^\s]+ \(/); // no stack trace
    expect(log).not.toContain('internal error');
    expect(log).not.toContain(token);
  }, 90_000);
});
