/**
 * What the brokers ask the engine besides `evaluate`, memoized so the relay's hot path pays for
 * the evaluator once per distinct question: the subject of an identity on a target (roles
 * resolved from its groups), SQL verdicts per subject by `sqlCacheKey`, and the fastpath verdict.
 * Pure memoization over the functions given: no I/O here.
 */
import type { Action, PolicyIntent, PolicyRequest, PolicySubject, Verdict } from './policy.types.js';
import type { PolicyEngine, PolicyIdentity } from './engine.types.js';
import { evaluateFastpath, UNPARSEABLE_SQL_RULE } from './evaluator.js';
import { rolesOf, type Role } from './roles.js';
import type { RuleSet } from './rules.js';
import { sqlCacheKey } from './sql-classify.js';

/** The verdict of an evaluation that threw (engine.ts); never cached. */
export const POLICY_ERROR_RULE = 'policy-error';
/** Longer texts are evaluated each time (sqlCacheKey does not fold them either). */
const MAX_CACHED_SQL = 4096;
const MAX_VERDICTS_PER_SUBJECT = 256;

export interface EngineCacheSource {
  /** Fails closed itself (a throw becomes a deny). */
  evaluate(request: PolicyRequest): Verdict;
  rules(): RuleSet;
  roles(): Role[];
  /** The target's own default action (config `targets[].default_action`). */
  defaultFor(target: string): Action;
}

export function engineCache(src: EngineCacheSource): Pick<PolicyEngine, 'evaluateCached' | 'evaluateFastpath' | 'subjectOf'> {
  // Keyed by the identity object a session holds (usually one target and login each); dropped with it.
  const subjects = new WeakMap<PolicyIdentity, { target: string; login: string; roles: Role[]; subject: PolicySubject }[]>();
  // Keyed by subject object: a new one (roles reloaded) starts empty; new rules empty it.
  const verdicts = new WeakMap<PolicySubject, { rules: RuleSet; byKey: Map<string, Verdict> }>();

  function cachedSql(subject: PolicySubject, intent: PolicyIntent & { kind: 'sql' }): Verdict {
    const sql = intent.sql;
    const rules = src.rules();
    let entry = verdicts.get(subject);
    if (!entry || entry.rules !== rules) verdicts.set(subject, (entry = { rules, byKey: new Map() }));
    const key = sqlCacheKey(sql);
    const hit = entry.byKey.get(key);
    if (hit) return hit;
    const v = src.evaluate({ ...subject, ...intent } as PolicyRequest);
    // A verdict depends only on the classification, which is the same for every text of one
    // key, except for parse failures (cached by exact text only, as in classifySql).
    if ((key === sql || v.rule !== UNPARSEABLE_SQL_RULE) && v.rule !== POLICY_ERROR_RULE) {
      if (entry.byKey.size >= MAX_VERDICTS_PER_SUBJECT) entry.byKey.delete(entry.byKey.keys().next().value!);
      entry.byKey.set(key, v);
    }
    return v;
  }

  return {
    subjectOf(identity, target, login) {
      const roles = src.roles();
      let known = subjects.get(identity);
      if (!known) subjects.set(identity, (known = []));
      let i = 0;
      while (i < known.length && (known[i]!.target !== target || known[i]!.login !== login)) i++;
      if (i < known.length && known[i]!.roles === roles) return known[i]!.subject;
      const subject = { user: identity.user, groups: identity.groups, roles: rolesOf(roles, identity.groups).map((r) => r.name), target, login };
      const entry = { target, login, roles, subject };
      known[i] = entry;
      return subject;
    },

    evaluateCached(subject: PolicySubject, intent: PolicyIntent): Verdict {
      // The request object is built only when the evaluator runs, and no closure per call (a
      // cache hit allocates nothing beyond the key; tsx's keepNames makes closures costly too).
      try {
        if (intent.kind !== 'sql' || intent.sql.length > MAX_CACHED_SQL) return src.evaluate({ ...subject, ...intent } as PolicyRequest);
        return cachedSql(subject, intent);
      } catch {
        return { action: 'deny', rule: POLICY_ERROR_RULE, message: 'denied: the policy could not be evaluated' };
      }
    },

    evaluateFastpath(subject) {
      try {
        return evaluateFastpath(src.rules(), subject, src.defaultFor(subject.target));
      } catch {
        return { action: 'deny', rule: POLICY_ERROR_RULE, message: 'fastpath function call denied: the policy could not be evaluated' };
      }
    },
  };
}
