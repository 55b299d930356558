import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startHttpServer } from '../../replay-ui/server/http.js';
import { replayUi } from '../../replay-ui/server/ui-index.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';

/**
 * GET /api/v1/inbox, GET /api/v1/inbox/count and approving for less time than asked (issue 18):
 * who sees what, what the answers hold, and precise 400s for bad durations.
 */
const targets: Target[] = [
  { name: 'web1', protocol: 'ssh', host: '127.0.0.1', port: 22, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 's' } }, defaultAction: 'allow' },
];

let cp: TestControlPlane;
let http: Listener;
let base: string;
let sam: string;
let dana: string;
beforeAll(async () => {
  cp = await startControlPlane({ targets });
  http = await startHttpServer(cp.deps, { host: '127.0.0.1', port: 0 }, replayUi(cp.deps));
  base = `http://127.0.0.1:${http.port}`;
  sam = await cp.token('sam', ['approvers']);
  dana = await cp.token('dana', ['admins']);
});
afterAll(async () => {
  await http.close();
  await cp.close();
});

const api = async (method: string, path: string, token: string, body?: unknown) => {
  const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, body: (await res.json()) as any };
};
const ask = async (duration = '2h') => (await api('POST', '/api/v1/requests', dana, { target: 'web1', login: 'root', duration, reason: 'INC-1' })).body.id as string;

describe('inbox API', () => {
  it('lists pending items with context and waiting time for an approver, counts them, and refuses others', async () => {
    const grant = await cp.grant('dana', 'web1', 'root');
    const id = await ask();
    const who = await cp.deps.identity.verify(dana);
    const hold = await cp.deps.holds.create(who, { kind: 'command', protocol: 'ssh', target: 'web1', login: 'root', text: 'rm -rf /srv/cache', rule: 'r', sessionId: 'rec-not-live' }, 60_000);
    const box = await api('GET', '/api/v1/inbox', sam);
    expect(box.status).toBe(200);
    expect(box.body.pending).toBe(2);
    const r = box.body.requests.find((x: any) => x.id === id);
    expect(r).toMatchObject({ user: 'dana', duration_ms: 7200_000, can_decide: true, own: false });
    expect(r.waited_ms).toBeGreaterThanOrEqual(0);
    expect(r.context.grants).toEqual([expect.objectContaining({ id: grant.id, target: 'web1', login: 'root' })]);
    const h = box.body.holds.find((x: any) => x.id === hold.id);
    expect(h).toMatchObject({ text: 'rm -rf /srv/cache', can_decide: true, session: { id: 'rec-not-live', live: false } });
    expect(Array.isArray(h.context.recent_commands) || h.context.recent_commands === null).toBe(true);
    expect((await api('GET', '/api/v1/inbox/count', sam)).body).toEqual({ pending: 2 });

    // The requester sees neither the inbox nor the count (no can_approve, no can_audit).
    expect((await api('GET', '/api/v1/inbox', dana)).status).toBe(403);
    expect((await api('GET', '/api/v1/inbox/count', dana)).body.error.message).toBe('the inbox needs a role with can_approve or can_audit');
    await cp.deps.holds.decide(await cp.deps.identity.verify(sam), hold.id, false, 'no');
    await api('POST', `/api/v1/requests/${id}/deny`, sam, { reason: 'no' });
    const after = await api('GET', '/api/v1/inbox', sam);
    expect(after.body.pending).toBe(0);
    expect(after.body.history.map((x: any) => [x.kind, x.id, x.outcome, x.decided_by])).toEqual(expect.arrayContaining([['request', id, 'denied', 'sam'], ['hold', hold.id, 'denied', 'sam']]));
  });

  it('approves for less time than asked; more than asked, nonsense or zero is a precise 400', async () => {
    const id = await ask('2h');
    const longer = await api('POST', `/api/v1/requests/${id}/approve`, sam, { duration: '3h' });
    expect(longer.status).toBe(400);
    expect(longer.body.error.message).toBe('duration 3h is longer than the 2h asked; approve at most what was asked');
    expect((await api('POST', `/api/v1/requests/${id}/approve`, sam, { duration: 'soon' })).body.error.message).toMatch(/^"duration": "soon" is not a duration/);
    expect((await api('POST', `/api/v1/requests/${id}/approve`, sam, { duration: '0m' })).status).toBe(400);
    expect((await api('POST', `/api/v1/requests/${id}/approve`, sam, { duration: 30 })).body.error.message).toBe('"duration" must be a string');
    // Still pending after the refusals; then approved for 45 minutes.
    const ok = await api('POST', `/api/v1/requests/${id}/approve`, sam, { duration: '45m', reason: 'short is enough' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 'approved', durationMs: 7200_000, approvedDurationMs: 45 * 60_000 });
    const grant = (await api('GET', '/api/v1/grants', sam)).body.find((g: any) => g.id === ok.body.grantId);
    expect(grant.expiresAt - grant.startsAt).toBe(45 * 60_000);
    const entry = (await api('GET', '/api/v1/inbox', sam)).body.history.find((x: any) => x.id === id);
    expect(entry).toMatchObject({ outcome: 'approved', asked_ms: 7200_000, granted_ms: 45 * 60_000, reason: 'short is enough' });
    // The asked duration approves as before.
    const full = await ask('1h');
    expect((await api('POST', `/api/v1/requests/${full}/approve`, sam, { duration: '1h' })).body.approvedDurationMs).toBeUndefined();
  });

  it('`pam approve ID --duration` grants less time than asked from the CLI', async () => {
    const id = await ask('2h');
    const { stdout } = await promisify(execFile)('node', ['bin/pam.js', 'approve', id, '--duration', '20m', '--json'], { env: { ...process.env, PAM_SERVER: base, PAM_TOKEN: sam } });
    expect(JSON.parse(stdout)).toMatchObject({ id, status: 'approved', approvedDurationMs: 20 * 60_000 });
  });
});
