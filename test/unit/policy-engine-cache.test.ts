import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { initSqlParser } from '../../policies/sql-classify.js';
import { evaluate } from '../../policies/evaluator.js';
import { engineCache, POLICY_ERROR_RULE } from '../../policies/engine-cache.js';
import { combineRuleFiles, parseRuleFile, type RuleSet } from '../../policies/rules.js';
import type { PolicyRequest, Verdict } from '../../policies/policy.types.js';
import type { Role } from '../../policies/roles.js';

/**
 * The engine's broker-facing questions (policies/engine-cache.ts) over the real evaluator: the
 * subject of an identity (roles from its groups), SQL verdicts memoized per subject by
 * sqlCacheKey, and the fastpath verdict. Each cached answer must equal a fresh evaluation.
 */

beforeAll(async () => {
  await initSqlParser();
});

const rulesFrom = (yaml: string): RuleSet => combineRuleFiles([parseRuleFile(YAML.parse(yaml), 'rules.yaml')]);
const RULES = rulesFrom(`
command_rules:
  - { name: no-drop, protocol: postgres, match: { statements: [DropStmt] }, action: deny }
  - { name: dba-no-audit, protocol: postgres, roles: [dba], match: { relations: [audit.log] }, action: deny }
  - { name: no-lo, protocol: postgres, logins: [app], match: { functions: [lo_export] }, action: deny }
`);
const role = (name: string, groups: string[]): Role => ({ name, groups, canRequest: [], canApprove: [], canAudit: false, canEditPolicies: false, canEditRoles: false });

function setup(opts: { rules?: RuleSet; evaluate?: (r: PolicyRequest) => Verdict } = {}) {
  let rules = opts.rules ?? RULES;
  let roles: Role[] = [role('dba', ['dbas']), role('sre', ['ops'])];
  const asked: PolicyRequest[] = [];
  const engine = engineCache({
    evaluate: (r) => {
      asked.push(r);
      return (opts.evaluate ?? ((q) => evaluate(rules, q, 'allow')))(r);
    },
    rules: () => rules,
    roles: () => roles,
    defaultFor: (t) => (t === 'locked' ? 'deny' : 'allow'),
  });
  return {
    engine, asked,
    setRules: (r: RuleSet) => { rules = r; },
    setRoles: (r: Role[]) => { roles = r; },
  };
}

const alice = { user: 'alice', groups: ['dbas', 'devs'] };

describe('subjectOf', () => {
  it('resolves roles from the groups, and is the same object until the roles change', () => {
    const { engine, setRoles } = setup();
    const s = engine.subjectOf(alice, 'db-1', 'app');
    expect(s).toEqual({ user: 'alice', groups: ['dbas', 'devs'], roles: ['dba'], target: 'db-1', login: 'app' });
    expect(engine.subjectOf(alice, 'db-1', 'app')).toBe(s);
    expect(engine.subjectOf(alice, 'db-2', 'app')).not.toBe(s);
    setRoles([role('dba', ['nobody']), role('dev', ['devs'])]);
    expect(engine.subjectOf(alice, 'db-1', 'app').roles).toEqual(['dev']);
  });
});

describe('evaluateCached', () => {
  it('gives the fresh verdict, evaluating once per folded text and subject', () => {
    const { engine, asked } = setup();
    const s = engine.subjectOf(alice, 'db-1', 'app');
    for (let i = 0; i < 50; i++) expect(engine.evaluateCached(s, { protocol: 'postgres', kind: 'sql', sql: `select * from audit.log where id = ${i}` })).toMatchObject({ action: 'deny', rule: 'dba-no-audit' });
    expect(asked).toHaveLength(1);
    // Another subject (no dba role) is asked afresh and gets its own verdict.
    const bob = engine.subjectOf({ user: 'bob', groups: ['ops'] }, 'db-1', 'app');
    expect(engine.evaluateCached(bob, { protocol: 'postgres', kind: 'sql', sql: 'select * from audit.log where id = 1' }).action).toBe('allow');
    expect(asked).toHaveLength(2);
  });

  it('forgets verdicts when the rules change, and uses the new roles at once', () => {
    const { engine, asked, setRules, setRoles } = setup();
    const sql = { protocol: 'postgres', kind: 'sql', sql: 'drop table t' } as const;
    expect(engine.evaluateCached(engine.subjectOf(alice, 'db-1', 'app'), sql).action).toBe('deny');
    setRules(rulesFrom('command_rules: []'));
    expect(engine.evaluateCached(engine.subjectOf(alice, 'db-1', 'app'), sql).action).toBe('allow');
    const audit = { protocol: 'postgres', kind: 'sql', sql: 'select * from audit.log' } as const;
    setRules(RULES);
    expect(engine.evaluateCached(engine.subjectOf(alice, 'db-1', 'app'), audit).action).toBe('deny');
    setRoles([]);
    expect(engine.evaluateCached(engine.subjectOf(alice, 'db-1', 'app'), audit).action).toBe('allow');
    expect(asked).toHaveLength(4);
  });

  it('caches an unparseable text by its exact text only, and never an evaluation error', () => {
    let fail = true;
    const { engine, asked } = setup({
      evaluate: (r) => {
        if (fail) throw new Error('boom');
        return evaluate(RULES, r, 'allow');
      },
    });
    const s = engine.subjectOf(alice, 'db-1', 'app');
    const q = { protocol: 'postgres', kind: 'sql', sql: 'select 1' } as const;
    expect(engine.evaluateCached(s, q)).toMatchObject({ action: 'deny', rule: POLICY_ERROR_RULE });
    fail = false;
    expect(engine.evaluateCached(s, q).action).toBe('allow');
    expect(engine.evaluateCached(s, { protocol: 'postgres', kind: 'sql', sql: 'selec 1' })).toMatchObject({ action: 'deny', rule: 'unparseable-sql' });
    // Same folded key as "selec 1", but a different text: evaluated, not served the cached failure.
    expect(engine.evaluateCached(s, { protocol: 'postgres', kind: 'sql', sql: 'selec 2' })).toMatchObject({ rule: 'unparseable-sql' });
    expect(asked.map((r) => (r as { sql: string }).sql)).toEqual(['select 1', 'select 1', 'selec 1', 'selec 2']);
  });

  it('passes SSH questions straight to the evaluator', () => {
    const { engine, asked } = setup();
    const s = engine.subjectOf(alice, 'web-1', 'root');
    engine.evaluateCached(s, { protocol: 'ssh', kind: 'command', command: 'ls' });
    engine.evaluateCached(s, { protocol: 'ssh', kind: 'command', command: 'ls' });
    expect(asked).toHaveLength(2);
    expect(asked[0]).toMatchObject({ user: 'alice', roles: ['dba'], target: 'web-1', login: 'root', command: 'ls' });
  });
});

describe('evaluateFastpath', () => {
  it('refuses where a functions rule applies or the target is in allow-list mode', () => {
    const { engine } = setup();
    expect(engine.evaluateFastpath(engine.subjectOf(alice, 'db-1', 'app'))).toMatchObject({ action: 'deny', rule: 'no-lo' });
    expect(engine.evaluateFastpath(engine.subjectOf(alice, 'db-1', 'other')).action).toBe('allow');
    expect(engine.evaluateFastpath(engine.subjectOf(alice, 'locked', 'other')).action).toBe('deny');
  });
});
