/**
 * SCIM 2.0 deprovisioning against the real HTTP listener, as Okta and Entra ID send it:
 * look-up by userName, create, deactivate by PATCH (Entra's "False" string), re-activate,
 * DELETE; wrong tokens get 401 and garbage gets SCIM error JSON with 400. Deactivation is
 * checked where it matters: the person's still-valid token stops working.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startHttpServer } from '../../replay-ui/server/http.js';
import type { Listener } from '../../proxy/broker.types.js';

const SCIM_TOKEN = `scim-${process.pid}-Zq8w`;
let cp: TestControlPlane;
let http: Listener;

beforeAll(async () => {
  cp = await startControlPlane({ targets: [{ name: 'web', protocol: 'ssh', host: '127.0.0.1', port: 1, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 's' } }, defaultAction: 'allow' }] });
  const tokenFile = join(cp.dataDir, 'scim.token');
  await writeFile(tokenFile, SCIM_TOKEN + '\n', { mode: 0o600 });
  cp.config.scim = { tokenFile };
  http = await startHttpServer(cp.deps, { host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await http?.close();
  await cp?.close();
});

async function scim(method: string, path: string, body?: unknown, opts: { token?: string; raw?: string } = {}) {
  const res = await fetch(`http://127.0.0.1:${http.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${opts.token ?? SCIM_TOKEN}`, ...(body !== undefined || opts.raw ? { 'content-type': 'application/scim+json' } : {}) },
    body: opts.raw ?? (body !== undefined ? JSON.stringify(body) : undefined),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), body: text ? JSON.parse(text) : undefined };
}
const whoami = async (token: string) => (await fetch(`http://127.0.0.1:${http.port}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })).status;

describe('SCIM /scim/v2/Users', () => {
  it('refuses a wrong or missing token with 401 and a SCIM error', async () => {
    const r = await scim('GET', '/scim/v2/Users', undefined, { token: 'not-it' });
    expect(r.status).toBe(401);
    expect(r.type).toMatch(/application\/scim\+json/);
    expect(r.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401' });
    const idToken = await cp.token('alice');
    expect((await scim('GET', '/scim/v2/Users', undefined, { token: idToken })).status).toBe(401);
  });

  it('answers garbage with 400 and a scimType, and keeps serving', async () => {
    expect((await scim('POST', '/scim/v2/Users', undefined, { raw: '{"userName": ' })).body).toMatchObject({ status: '400', scimType: 'invalidSyntax' });
    expect((await scim('POST', '/scim/v2/Users', { userName: 42 })).body).toMatchObject({ status: '400', scimType: 'invalidValue' });
    expect((await scim('GET', '/scim/v2/Users?filter=' + encodeURIComponent('name.givenName sw "a"'))).body).toMatchObject({ status: '400', scimType: 'invalidFilter' });
    expect((await scim('PATCH', '/scim/v2/Users/nope', { Operations: [] })).status).toBe(400);
    expect((await scim('GET', '/scim/v2/Users/00000000-0000-0000-0000-000000000000')).status).toBe(404);
    expect((await scim('GET', '/scim/v2/Users')).status).toBe(200);
  });

  it('looks up, creates, deactivates (offboards), re-activates and deletes', async () => {
    const filter = '/scim/v2/Users?filter=' + encodeURIComponent('userName eq "Alice@Example.com"');
    expect((await scim('GET', filter)).body).toMatchObject({ totalResults: 0, Resources: [] });
    const created = await scim('POST', '/scim/v2/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'alice@example.com', externalId: 'okta-1', active: true, emails: [{ value: 'alice@example.com', primary: true }] });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.body.meta.location).toMatch(new RegExp(`/scim/v2/Users/${id}$`));
    expect((await scim('POST', '/scim/v2/Users', { userName: 'alice@example.com' })).body).toMatchObject({ status: '409', scimType: 'uniqueness' });
    expect((await scim('GET', filter)).body).toMatchObject({ totalResults: 1, Resources: [{ id, userName: 'alice@example.com', active: true }] });

    const token = await cp.deps.dev!.issue('alice', ['admins'], { email: 'alice@example.com', subject: 'sub-alice-scim' });
    await cp.deps.access.request(await cp.deps.identity.verify(token), { target: 'web', login: 'root', durationMs: 600_000, reason: 'x' });
    expect(await whoami(token)).toBe(200);

    const off = await scim('PATCH', `/scim/v2/Users/${id}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] });
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    expect(await whoami(token)).toBe(401);
    const entry = (await cp.audit()).find((e) => e.type === 'offboard');
    expect(entry).toMatchObject({ actor: 'scim', user: 'alice@example.com' });
    expect((await cp.deps.access.listRequests(await cp.deps.identity.verify(await cp.token('sam', ['approvers'])))).find((r) => r.user === 'alice')?.status).toBe('denied');

    const on = await scim('PATCH', `/scim/v2/Users/${id}`, { Operations: [{ op: 'replace', value: { active: true } }] });
    expect(on.body.active).toBe(true);
    // The token from before the offboarding stays dead; one issued afterwards works.
    expect(await whoami(token)).toBe(401);
    await new Promise((r) => setTimeout(r, 1100)); // iat has one-second resolution
    expect(await whoami(await cp.deps.dev!.issue('alice', ['admins'], { email: 'alice@example.com', subject: 'sub-alice-scim' }))).toBe(200);

    expect((await scim('DELETE', `/scim/v2/Users/${id}`)).status).toBe(204);
    expect((await scim('GET', `/scim/v2/Users/${id}`)).status).toBe(404);
    expect((await cp.audit()).filter((e) => e.type === 'offboard')).toHaveLength(2);
  });
});
