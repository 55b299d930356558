import type { HttpDeps } from './http.types.js';
import { whatIf, type WhatIfInput } from '../../policies/what-if.js';
import type { RuleSet } from '../../policies/rules.js';
import type { Role } from '../../policies/roles.js';
import { previewAccess } from '../../access/access-preview.js';
import type { Grant } from '../../access/access.types.js';
import { HttpError } from './http-errors.js';
import { requireCapability } from './route-capability.js';
import { field, type Route } from './router.js';
import { checkName, loadDraft, MAX_POLICY_FILE } from './policy-draft.js';

/**
 * POST /api/v1/policy/test: the what-if tester (can_edit_policies or can_audit). It answers for
 * the rules in force and, with `draft: { name, content }`, for the folder with that file
 * replaced (nothing is written). Each answer carries the access check (`access`): whether the
 * person could open the session at all (a grant now, a role that may request it, or neither).
 */
export function policyRoutes(cp: HttpDeps): Route[] {
  const judge = (rules: RuleSet, roles: Role[], grants: Grant[], input: WhatIfInput) => {
    const v = whatIf(rules, roles, cp.config.targets, input);
    const target = cp.config.targets.find((t) => t.name === input.target)!;
    return {
      action: v.action, rule: v.rule ?? null, message: v.message ?? null, commands: v.commands ?? null, roles: v.request.roles,
      access: previewAccess(input, roles, grants, target, input.login, Date.now()),
    };
  };
  return [
    {
      method: 'POST', path: '/api/v1/policy/test',
      handler: async ({ identity, body }) => {
        requireCapability(cp, identity, 'readPolicies');
        const input = readInput(body);
        const draft = await readDraft(cp, body.draft);
        const grants = await cp.access.activeGrantsOf(input.user);
        try {
          const published = judge(cp.policy.rules(), cp.roles(), grants, input);
          if (!draft) return published;
          if (!draft.ok) return { ...published, draft: { ok: false, error: draft.error } };
          return { ...published, draft: { ok: true, ...judge(draft.rules, draft.roles, grants, input) } };
        } catch (e) {
          if (e instanceof HttpError) throw e;
          throw new HttpError(400, (e as Error).message);
        }
      },
    },
  ];
}

function readInput(body: Record<string, unknown>): WhatIfInput {
  const groups = body.groups;
  if (groups !== undefined && (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string'))) throw new HttpError(400, '"groups" must be a list of names');
  return {
    user: field(body, 'user', { required: true, max: 256 })!, groups: (groups as string[]) ?? [],
    target: field(body, 'target', { required: true, max: 128 })!, login: field(body, 'login', { required: true, max: 128 })!,
    command: field(body, 'command', { max: 65536 }), sql: field(body, 'sql', { max: 1 << 20 }),
  };
}

/** `draft: { name, content }` → the folder with that file replaced, loaded; undefined without a draft. */
async function readDraft(cp: HttpDeps, raw: unknown) {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new HttpError(400, '"draft" must be an object { name, content }');
  const d = raw as Record<string, unknown>;
  if (typeof d.name !== 'string' || !d.name) throw new HttpError(400, '"draft.name" is required: the file the draft replaces');
  const name = checkName(d.name);
  if (d.content !== undefined && typeof d.content !== 'string') throw new HttpError(400, '"draft.content" must be a string');
  const content = (d.content as string | undefined) ?? '';
  if (content.length > MAX_POLICY_FILE) throw new HttpError(400, '"draft.content" is too long');
  return loadDraft(cp.config.policiesDir, name, content);
}
