import type { Identity } from '../../access/identity.types.js';
import type { Verdict } from '../../policies/policy.types.js';
import { rolesOf } from '../../policies/roles.js';
import type { BrokerDeps } from '../broker.types.js';
import { sqlCacheKey } from '../../policies/sql-classify.js';
import { evaluateFastpath, UNPARSEABLE_SQL_RULE } from '../../policies/evaluator.js';
import type { RuleSet } from '../../policies/rules.js';

/**
 * The policy seam: every statement text (simple Query, Parse) is asked about before it is
 * forwarded. Verdicts are cached per session by `sqlCacheKey` (text with numeric constants
 * folded, when that is safe) while the engine's rule set
 * (`rules()`, when the engine has one) and the roles stay the same objects, so a driver
 * re-parsing the same text does not pay for the evaluator each time. An evaluator that throws
 * denies (fail closed). Every verdict other than allow is audited.
 */
export function sqlPolicyCheck(deps: BrokerDeps, identity: Identity, target: string, login: string, recordingId: () => string | undefined): (sql: string) => Verdict {
  const engine = deps.policy!;
  const currentRules = typeof (engine as { rules?: unknown }).rules === 'function' ? () => (engine as unknown as { rules(): unknown }).rules() : undefined;
  let rolesSrc = deps.roles();
  let roles = rolesOf(rolesSrc, identity.groups).map((r) => r.name);
  let rulesSeen = currentRules?.();
  const cache = new Map<string, Verdict>();
  return (sql) => {
    let v: Verdict | undefined;
    try {
      const nowRoles = deps.roles();
      const nowRules = currentRules?.();
      if (nowRoles !== rolesSrc || nowRules !== rulesSeen) {
        rolesSrc = nowRoles;
        roles = rolesOf(nowRoles, identity.groups).map((r) => r.name);
        rulesSeen = nowRules;
        cache.clear();
      }
      const key = currentRules ? sqlCacheKey(sql) : sql;
      v = currentRules ? cache.get(key) : undefined;
      if (!v) {
        v = engine.evaluate({ protocol: 'postgres', kind: 'sql', sql, user: identity.user, groups: identity.groups, roles, target, login });
        // A verdict depends only on the classification, which is the same for every text of one
        // key, except for parse failures (cached by exact text only, as in classifySql).
        const cacheable = key === sql || v.rule !== UNPARSEABLE_SQL_RULE;
        if (currentRules && sql.length <= 4096 && cacheable) {
          if (cache.size >= 256) cache.delete(cache.keys().next().value!);
          cache.set(key, v);
        }
      }
    } catch {
      v = { action: 'deny', message: 'statement denied: the policy could not be evaluated' };
    }
    if (v.action !== 'allow') {
      void deps.audit.append({ type: `policy.${v.action}`, actor: identity.user, protocol: 'postgres', target, login, rule: v.rule, sql: sql.slice(0, 2000), recording: recordingId() }).catch(() => {});
    }
    return v;
  };
}

/**
 * The fastpath seam: a FunctionCall is judged by `evaluateFastpath` on the engine's current
 * rules (refused where a `functions` rule or allow-list mode applies). An engine that does not
 * expose its rules refuses every fastpath call (fail closed). Refusals are audited.
 */
export function fastpathPolicyCheck(deps: BrokerDeps, identity: Identity, target: string, login: string, recordingId: () => string | undefined): () => Verdict {
  const engine = deps.policy as { rules?: () => RuleSet };
  return () => {
    let v: Verdict;
    try {
      if (typeof engine.rules !== 'function') v = { action: 'deny', message: 'fastpath function calls are refused while SQL policy is on; call the function with SELECT' };
      else {
        const roles = rolesOf(deps.roles(), identity.groups).map((r) => r.name);
        const targetDefault = deps.config.targets.find((t) => t.name === target)?.defaultAction ?? 'deny';
        v = evaluateFastpath(engine.rules(), { user: identity.user, groups: identity.groups, roles, target, login }, targetDefault);
      }
    } catch {
      v = { action: 'deny', message: 'fastpath function call denied: the policy could not be evaluated' };
    }
    if (v.action !== 'allow') {
      void deps.audit.append({ type: `policy.${v.action}`, actor: identity.user, protocol: 'postgres', target, login, rule: v.rule, sql: '-- fastpath function call', recording: recordingId() }).catch(() => {});
    }
    return v;
  };
}
