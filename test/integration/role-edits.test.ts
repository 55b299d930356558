/**
 * Nobody widens their own capabilities (issue 12). Against the real `pam serve` process: a
 * policy editor publishing a roles file that gives itself can_audit is refused, the file on
 * disk is untouched and recordings stay closed to it; a role editor cannot widen its own
 * rights either; a second person with can_edit_roles can make the same change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '../helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';

const ROLES = `roles:
  - name: editor
    groups: [editors]
    can_edit_policies: true
  - name: role-admin
    groups: [role-admins]
    can_edit_policies: true
    can_edit_roles: true
  - name: second-admin
    groups: [second-admins]
    can_edit_policies: true
    can_edit_roles: true
`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let pam: PamProcess;
const tokens: Record<string, string> = {};

async function api(who: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(pam.server + path, { method, headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

async function publish(who: string, name: string, content: string) {
  const cur = await readFile(join(pam.dir, 'policies', name), 'utf8').catch(() => undefined);
  return api(who, 'PUT', `/api/v1/policy/files/${name}`, { content, ...(cur === undefined ? {} : { base_sha256: sha(cur) }) });
}

beforeAll(async () => {
  pam = await startPamProcess({ roles: ROLES });
  for (const [who, group] of [['pat', 'editors'], ['rita', 'role-admins'], ['sue', 'second-admins']]) {
    tokens[who!] = (await pam.pam(['dev', 'token', who!, '--groups', group!])).stdout.trim();
  }
}, 60_000);

afterAll(async () => {
  await pam?.stop();
});

describe('role edits', () => {
  it('refuses a policy editor giving itself can_audit, and leaves the roles as they were', async () => {
    expect((await api('pat', 'GET', '/api/v1/recordings')).status).toBe(403);
    const widened = ROLES.replace('    can_edit_policies: true\n  - name: role-admin', '    can_edit_policies: true\n    can_audit: true\n    can_approve: [role-admin]\n  - name: role-admin');
    expect(widened).not.toBe(ROLES);
    const r = await publish('pat', 'roles.yaml', widened);
    expect(r.status).toBe(403);
    expect(String((r.json.error as { message: string }).message)).toContain('can_edit_roles');
    // A new file with a roles section is the same change by another door.
    const sneaky = await publish('pat', 'zz-rules.yaml', 'roles:\n  - name: me-too\n    groups: [editors]\n    can_audit: true\n');
    expect(sneaky.status).toBe(403);
    // The validator says so while typing.
    const v = await api('pat', 'POST', '/api/v1/policy/validate', { name: 'roles.yaml', content: widened });
    expect(v.json).toMatchObject({ ok: true, roles_changed: true });
    expect(String(v.json.publish_refused)).toContain('can_edit_roles');
    // At the target of the attack: the file on disk and the API.
    expect(await readFile(join(pam.dir, 'policies', 'roles.yaml'), 'utf8')).toBe(ROLES);
    await expect(readFile(join(pam.dir, 'policies', 'zz-rules.yaml'))).rejects.toThrow();
    expect((await api('pat', 'GET', '/api/v1/recordings')).status).toBe(403);
    // Rules alone are still the editor's to publish.
    const rules = await publish('pat', 'rules.yaml', 'command_rules:\n  - name: no-rm\n    protocol: ssh\n    match: { command: rm }\n    action: deny\n');
    expect(rules.status, JSON.stringify(rules.json)).toBe(200);
    expect(rules.json.roles_changed).toBe(false);
  }, 60_000);

  it('refuses a role editor widening its own rights; a second role editor may make the change', async () => {
    const selfish = ROLES.replace(
      '  - name: role-admin\n    groups: [role-admins]\n    can_edit_policies: true\n    can_edit_roles: true\n',
      '  - name: role-admin\n    groups: [role-admins]\n    can_edit_policies: true\n    can_edit_roles: true\n    can_audit: true\n');
    expect(selfish).not.toBe(ROLES);
    const r = await publish('rita', 'roles.yaml', selfish);
    expect(r.status).toBe(403);
    expect(String((r.json.error as { message: string }).message)).toMatch(/widen your own capabilities \(can_audit\)/);
    expect((await api('rita', 'GET', '/api/v1/recordings')).status).toBe(403);

    const ok = await publish('sue', 'roles.yaml', selfish);
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json.roles_changed).toBe(true);
    // The engine hot-reloads: rita now audits, granted by sue.
    await waitFor(async () => (await api('rita', 'GET', '/api/v1/recordings')).status === 200, 'the new roles to load');
    const audit = (await api('rita', 'GET', '/api/v1/audit?since=1h')).json as unknown as { type: string; actor: string }[];
    expect(audit.filter((e) => e.type === 'policy.publish-refused').map((e) => e.actor).sort()).toEqual(['pat', 'pat', 'rita']);
    expect(audit.some((e) => e.type === 'policy.publish' && e.actor === 'sue')).toBe(true);
  }, 60_000);
});
