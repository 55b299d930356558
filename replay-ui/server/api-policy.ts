import type { HttpDeps } from './http.types.js';
import { whatIf } from '../../policies/what-if.js';
import { HttpError } from './http-errors.js';
import { requireCapability } from './route-capability.js';
import { field, type Route } from './router.js';

/** POST /api/v1/policy/test: the what-if tester on the rules in force (can_edit_policies or can_audit). */
export function policyRoutes(cp: HttpDeps): Route[] {
  return [
    {
      method: 'POST', path: '/api/v1/policy/test',
      handler: ({ identity, body }) => {
        requireCapability(cp, identity, 'readPolicies');
        const groups = body.groups;
        if (groups !== undefined && (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string'))) throw new HttpError(400, '"groups" must be a list of names');
        try {
          const v = whatIf(cp.policy.rules(), cp.roles(), cp.config.targets, {
            user: field(body, 'user', { required: true, max: 256 })!, groups: (groups as string[]) ?? [],
            target: field(body, 'target', { required: true, max: 128 })!, login: field(body, 'login', { required: true, max: 128 })!,
            command: field(body, 'command', { max: 65536 }), sql: field(body, 'sql', { max: 1 << 20 }),
          });
          return { action: v.action, rule: v.rule ?? null, message: v.message ?? null, commands: v.commands ?? null, roles: v.request.roles };
        } catch (e) {
          if (e instanceof HttpError) throw e;
          throw new HttpError(400, (e as Error).message);
        }
      },
    },
  ];
}
