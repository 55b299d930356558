import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startHttpServer } from '../../replay-ui/server/http.js';
import { replayUi } from '../../replay-ui/server/ui-index.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';

/**
 * POST /api/v1/policy/test with a draft (issue 18): the rules in force and the draft side by
 * side, each with the access check; bad input is a precise 400. POST /api/v1/policy/validate
 * names the line an error points at.
 */
const targets: Target[] = [
  { name: 'web1', protocol: 'ssh', host: '127.0.0.1', port: 22, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 's' } }, defaultAction: 'allow' },
];
const RULES = 'command_rules:\n  - name: no-halt\n    protocol: ssh\n    match: { command: [halt] }\n    action: deny\n';

let cp: TestControlPlane;
let http: Listener;
let base: string;
let sam: string;
beforeAll(async () => {
  cp = await startControlPlane({ targets });
  await writeFile(join(cp.config.policiesDir, 'rules.yaml'), RULES);
  http = await startHttpServer(cp.deps, { host: '127.0.0.1', port: 0 }, replayUi(cp.deps));
  base = `http://127.0.0.1:${http.port}`;
  sam = await cp.token('sam', ['approvers']);
  await cp.grant('alice', 'web1', 'root');
});
afterAll(async () => {
  await http.close();
  await cp.close();
});

const post = async (path: string, body: unknown, token = sam) => {
  const res = await fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
};
const ask = (extra: Record<string, unknown>) => post('/api/v1/policy/test', { user: 'alice', groups: ['admins'], target: 'web1', login: 'root', command: 'echo draft-thing', ...extra });
const DRAFT = RULES + '  - name: no-draft-thing\n    protocol: ssh\n    match: { regex: "draft-thing" }\n    action: deny\n';

describe('what-if on a draft, with the access check', () => {
  it('judges the draft and the rules in force side by side without writing anything', async () => {
    const r = await ask({ draft: { name: 'rules.yaml', content: DRAFT } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ action: 'allow', rule: null, access: { state: 'grant' } });
    expect(r.body.draft).toMatchObject({ ok: true, action: 'deny', rule: 'no-draft-thing', access: { state: 'grant' } });
    expect(r.body.access.words).toContain('alice holds an active grant for root@web1');
    expect(await readFile(join(cp.config.policiesDir, 'rules.yaml'), 'utf8')).toBe(RULES);
    // A draft may be a new file beside the others.
    const added = await ask({ draft: { name: 'extra-rules.yaml', content: DRAFT.replace('no-halt', 'no-halt-2') } });
    expect(added.body.draft).toMatchObject({ ok: true, action: 'deny' });
  });

  it('says in plain words who could not connect at all, and who must ask first', async () => {
    const none = await ask({ user: 'mallory', groups: [] });
    expect(none.body.access).toMatchObject({ state: 'none' });
    expect(none.body.access.words).toBe('mallory could not connect to root@web1 at all: no active grant, and they hold no role that may request it.');
    const asker = await ask({ user: 'bob' });
    expect(asker.body.access).toMatchObject({ state: 'may-request', requestable: { roles: ['admin'], maxDuration: '8h' } });
    // Roles come from the draft too: a draft that drops the admin role leaves bob with nothing.
    const roles = await readFile(join(cp.config.policiesDir, 'roles.yaml'), 'utf8');
    const withoutAdmin = roles.replace(/ {2}- name: admin[\s\S]*?(?= {2}- name: approver)/, '');
    expect(withoutAdmin).not.toContain('name: admin\n');
    const dropped = await ask({ user: 'bob', draft: { name: 'roles.yaml', content: withoutAdmin } });
    expect(dropped.body.access.state).toBe('may-request');
    expect(dropped.body.draft.access.state).toBe('none');
    const login = await ask({ login: 'nobody' });
    expect(login.body.access.state).toBe('unknown-login');
  });

  it('a draft that does not load is reported, not judged', async () => {
    const r = await ask({ draft: { name: 'rules.yaml', content: 'command_rules:\n  - name: x\n    protocol: ssh\n    match: { regex: "(" }\n    action: deny\n' } });
    expect(r.status).toBe(200);
    expect(r.body.draft.ok).toBe(false);
    expect(r.body.draft.error).toMatch(/^rules\.yaml: command_rules\[0\] \(x\)\.match\.regex/);
    expect(r.body.draft.error).not.toContain('/tmp');
  });

  it('answers bad input with a precise 400 and keeps serving', async () => {
    expect((await ask({ draft: 'rules.yaml' })).body.error.message).toBe('"draft" must be an object { name, content }');
    expect((await ask({ draft: [] })).status).toBe(400);
    expect((await ask({ draft: { content: DRAFT } })).body.error.message).toMatch(/"draft.name" is required/);
    expect((await ask({ draft: { name: '../roles.yaml', content: DRAFT } })).body.error.message).toMatch(/policy file name/);
    expect((await ask({ draft: { name: 'rules.yaml', content: 42 } })).body.error.message).toBe('"draft.content" must be a string');
    expect((await ask({ draft: { name: 'rules.yaml', content: 'x'.repeat(600 * 1024) } })).status).toBe(400);
    expect((await ask({ target: 'nowhere' })).body.error.message).toMatch(/unknown target/);
    expect((await ask({})).status).toBe(200);
    // No can_edit_policies nor can_audit: 403.
    const alice = await cp.token('alice', ['admins']);
    expect((await post('/api/v1/policy/test', { user: 'a', target: 'web1', login: 'root', command: 'x', draft: { name: 'rules.yaml', content: DRAFT } }, alice)).status).toBe(403);
  });

  it('validation names the line of the error', async () => {
    const content = RULES + '  - name: broken\n    protocol: ssh\n    match: { regex: "(" }\n    action: deny\n';
    const r = await post('/api/v1/policy/validate', { name: 'rules.yaml', content });
    expect(r.body).toMatchObject({ ok: false, line: 8 });
    const syntax = await post('/api/v1/policy/validate', { name: 'rules.yaml', content: 'command_rules:\n  - name: a\n   match: {\n' });
    expect(syntax.body.line).toBe(3);
  });
});
