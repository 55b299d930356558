import type { PolicyEngine } from '../../policies/engine.types.js';
import { engineCache } from '../../policies/engine-cache.js';
import type { PolicyRequest, Verdict } from '../../policies/policy.types.js';
import type { Role } from '../../policies/roles.js';
import type { RuleSet } from '../../policies/rules.js';

/**
 * A PolicyEngine whose decisions come from the test's own function instead of rule files, with
 * the engine's real subject resolution and verdict cache (policies/engine-cache.ts) around it.
 * It has no rules, and its targets default to deny, so fastpath calls are refused.
 */
export function policyEngineOf(decide: (req: PolicyRequest) => Verdict, roles: () => Role[]): PolicyEngine {
  const rules: RuleSet = { rules: [], defaults: [], unparseableSql: 'deny' };
  return { evaluate: decide, rules: () => rules, ...engineCache({ evaluate: decide, rules: () => rules, roles, defaultFor: () => 'deny' }) };
}
