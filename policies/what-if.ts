import type { Action, PolicyRequest, Verdict } from './policy.types.js';
import { evaluate } from './evaluator.js';
import type { RuleSet } from './rules.js';
import { rolesOf, type Role } from './roles.js';
import type { Target } from '../config/config.types.js';

export interface WhatIfInput {
  user: string;
  groups: string[];
  target: string;
  login: string;
  command?: string;
  sql?: string;
}

/**
 * The security team's what-if: the same pure evaluator the proxy calls, on a request built from
 * plain values. Throws on input that names no command or SQL, or an unknown target.
 */
export function whatIf(rules: RuleSet, roles: Role[], targets: Target[], input: WhatIfInput): Verdict & { request: PolicyRequest } {
  const target = targets.find((t) => t.name === input.target);
  if (!target) throw new Error(`unknown target "${input.target}"`);
  if (!!input.command === !!input.sql) throw new Error('give exactly one of --command or --sql');
  const subject = { user: input.user, groups: input.groups, roles: rolesOf(roles, input.groups).map((r) => r.name), target: target.name, login: input.login };
  let request: PolicyRequest;
  if (input.command !== undefined) {
    if (target.protocol !== 'ssh') throw new Error(`target "${target.name}" is ${target.protocol}: use --sql`);
    request = { ...subject, protocol: 'ssh', kind: 'command', command: input.command };
  } else {
    if (target.protocol !== 'postgres') throw new Error(`target "${target.name}" is ${target.protocol}: use --command`);
    request = { ...subject, protocol: 'postgres', kind: 'sql', sql: input.sql! };
  }
  const verdict = evaluate(rules, request, target.defaultAction as Action);
  return { ...verdict, request };
}
