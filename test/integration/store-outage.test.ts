/**
 * A store outage is a typed condition (issue 12). `pam serve` as its own process on a Redis of
 * the test's own: the Redis is killed (the fault, checked to have fired by the proxy's own
 * answer changing) and started again on the same port. While it is down the API answers 503
 * `unavailable` with the fixed message, the log gets one line per state change (not one per
 * reconnect attempt, no stack), and the proxy recovers by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import pg from 'pg';
import { exec } from '../helpers/ssh-exec.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';
import { privateRedis, type PrivateRedis } from '../helpers/redis-private.js';
import { waitFor } from '../helpers/sshd.js';

let redis: PrivateRedis;
let sshd: TestSshd;
let pam: PamProcess;
let token: string;
let alice: string;

function sshLogin(tok: string, debug?: string[]): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed')));
    c.connect({ host: '127.0.0.1', port: pam.ports.ssh, username: 'root@web1', password: tok, readyTimeout: 30_000, debug: debug ? (m) => debug.push(m) : undefined });
  });
}

async function pgLogin(tok: string): Promise<{ code?: string; message: string }> {
  const c = new pg.Client({ host: '127.0.0.1', port: pam.ports.pg, user: 'postgres', database: 'appdb', password: tok });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.end();
    return { message: 'connected' };
  } catch (e) {
    return e as { code?: string; message: string };
  }
}

const grants = async () => {
  const r = await fetch(`${pam.server}/api/v1/grants`, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as { error?: { code: string; message: string } }, retryAfter: r.headers.get('retry-after') };
};

beforeAll(async () => {
  redis = await privateRedis();
  sshd = await startSshd();
  pam = await startPamProcess({
    roles: `roles:
  - name: security
    groups: [security]
    can_audit: true
    can_approve: [admin]
  - name: admin
    groups: [admins]
    can_request: [{ targets: ["*"], logins: ["*"], max_duration: 1h }]
`,
    store: `${redis.url}/0`,
    extra: `targets:
  - name: web1
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web1-root } }
  - name: appdb
    protocol: postgres
    address: "127.0.0.1:5432"
    database: postgres
    tls: disable
    logins: { postgres: { secret: appdb-pg } }
`,
  });
  token = (await pam.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
  alice = (await pam.pam(['dev', 'token', 'alice', '--groups', 'admins'])).stdout.trim();
  expect((await pam.pam(['secret', 'set', 'web1-root'], {}, sshd.userKey)).code).toBe(0);
  const req = await pam.pam(['request', '--target', 'web1', '--login', 'root', '--duration', '30m', '--reason', 'outage', '--json'], { PAM_TOKEN: alice });
  expect((await pam.pam(['approve', JSON.parse(req.stdout).id], { PAM_TOKEN: token })).code).toBe(0);
}, 180_000);

afterAll(async () => {
  await pam?.stop();
  await redis?.stop();
  await sshd?.close();
});

describe('store outage', () => {
  it('answers 503 unavailable while the store is down, logs each change once, and recovers by itself', async () => {
    expect((await grants()).status).toBe(200);
    // A session that is already running when the store goes.
    const live = await sshLogin(alice);
    expect((await exec(live, 'echo before')).stdout).toBe('before\n');
    await redis.stop();
    const down = await waitFor(async () => {
      const g = await grants();
      return g.status === 503 ? g : undefined;
    }, 'the API to notice the outage');
    expect(down.body.error).toEqual({ code: 'unavailable', message: 'the access store is unavailable, try again' });
    expect(down.retryAfter).toBe('5');
    // Many calls during the outage: each one answered the same way, quickly refused.
    for (let i = 0; i < 20; i++) expect((await grants()).status).toBe(503);
    // New sessions are refused with the condition named, on both ports.
    const pgRefusal = await pgLogin(alice);
    expect(pgRefusal).toMatchObject({ code: '57P03', message: 'the access store is unavailable, try again' });
    const debug: string[] = [];
    await expect(sshLogin(alice, debug)).rejects.toThrow();
    expect(debug.join('\n')).toContain('Received DISCONNECT (7, "the access store is unavailable, try again")');
    // The live session goes on.
    expect((await exec(live, 'echo during')).stdout).toBe('during\n');
    // The bearer check does not need the store: a bad token is still a 401, not a 503.
    expect((await fetch(`${pam.server}/api/v1/grants`, { headers: { authorization: 'Bearer x.y.z' } })).status).toBe(401);
    // Let ioredis retry a few times in the background: still one line.
    await new Promise((r) => setTimeout(r, 1500));
    await redis.start();
    await waitFor(async () => (await grants()).status === 200, 'the API to recover', 1200);
    expect((await exec(live, 'echo after')).stdout).toBe('after\n');
    live.end();
    // The restarted Redis is empty (--save ""): a new login now reaches the grant check again.
    expect((await pgLogin(alice)).message).toMatch(/no active grant|not available on this proxy/);
    const log = pam.log();
    expect(log.match(/state store unavailable/g)).toHaveLength(1);
    expect(log.match(/state store available again/g)).toHaveLength(1);
    expect(log).not.toMatch(/\s+at [^\s]+ \(/); // no stack trace
    expect(log).not.toContain('internal error');
    expect(log).not.toContain(token);
  }, 90_000);
});
