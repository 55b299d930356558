/**
 * The pure policy decision: `evaluate(rules, request, defaultAction) -> Verdict`. No I/O, so the
 * proxy, a what-if tool and the tests call the same function. The SQL parser must have been
 * initialised once (`initSqlParser()`); until then every SQL request is "unparseable".
 *
 * Decision: every unit of the request (each simple command of a shell line, each SQL statement)
 * is matched against every applicable rule. A unit no rule matches gets the default action.
 * The strongest action over all units and matches wins: deny > review > alert > allow.
 */
import type { Action, PolicyRequest, PolicySubject, Verdict } from './policy.types.js';
import { globMatch } from './roles.js';
import { STRENGTH, type Rule, type RuleSet, type SqlMatch } from './rules.js';
import { basename, splitCommands, type SimpleCommand } from './shell-words.js';
import { classifySql, type SqlRelation, type SqlStatement } from './sql-classify.js';

export const UNPARSEABLE_SQL_RULE = 'unparseable-sql';
const FORWARDING = new Set(['port-forward', 'agent-forward', 'x11']);

interface Candidate { action: Action; rule?: Rule; unit: string }

/** The target's default, raised by any stronger `default_action` in the policy files. */
export function effectiveDefault(rules: RuleSet, target: string, targetDefault: Action = 'allow'): Action {
  let a = targetDefault;
  for (const d of rules.defaults) if (globMatch(d.target, target) && STRENGTH[d.action] > STRENGTH[a]) a = d.action;
  return a;
}

export function evaluate(rules: RuleSet, request: PolicyRequest, defaultAction: Action = 'allow'): Verdict {
  const fallback = effectiveDefault(rules, request.target, defaultAction);
  const applicable = rules.rules.filter((r) => applies(r, request));
  if (request.protocol === 'ssh' && request.kind === 'command') return evaluateShell(applicable, request.command, fallback, request.unechoed === true);
  if (request.protocol === 'ssh') {
    const matched = applicable.filter((r) => r.match.kind === 'channel' && r.match.channels.includes(request.channel)
      && (r.match.destination === undefined || (request.destination !== undefined && globMatch(r.match.destination, request.destination))));
    const unit = request.destination ? `${request.channel} ${request.destination}` : request.channel;
    // Forwarding and X11 open paths around the recorded terminal: refused unless a rule allows them.
    const channelFallback = FORWARDING.has(request.channel) ? 'deny' : fallback;
    return decide(matched.length ? matched.map((rule) => ({ action: rule.action, rule, unit })) : [{ action: channelFallback, unit }]);
  }
  return evaluateSql(applicable, request.sql, fallback, rules.unparseableSql);
}

/**
 * A fastpath FunctionCall (libpq `PQfn`, used by psql's `\lo_import`) names its function by
 * OID, with no SQL text to judge. It is refused only where the rules would need that text: a
 * postgres rule with a `functions` matcher (action other than allow) applies to the subject, or
 * the target runs in allow-list mode (effective default other than allow). Otherwise allowed.
 */
export function evaluateFastpath(rules: RuleSet, subject: PolicySubject, defaultAction: Action = 'allow'): Verdict {
  const req: PolicyRequest = { ...subject, protocol: 'postgres', kind: 'sql', sql: '' };
  const fn = rules.rules.find((r) => r.match.kind === 'sql' && r.match.functions !== undefined && r.action !== 'allow' && applies(r, req));
  if (fn) return { action: 'deny', rule: fn.name, message: `fastpath function calls are refused here: rule ${fn.name} judges functions by name and a fastpath call names none; call the function with SELECT` };
  const fallback = effectiveDefault(rules, subject.target, defaultAction);
  if (fallback !== 'allow') return { action: 'deny', message: `fastpath function calls are refused here (default action ${fallback}); call the function with SELECT` };
  return { action: 'allow' };
}

function applies(r: Rule, req: PolicyRequest): boolean {
  return r.protocol === req.protocol
    && r.targets.some((t) => globMatch(t, req.target))
    && (r.logins.length === 0 || r.logins.some((l) => globMatch(l, req.login)))
    && (r.roles.length === 0 || r.roles.some((role) => req.roles.includes(role)));
}

function evaluateShell(rules: Rule[], line: string, fallback: Action, unechoed: boolean): Verdict {
  const commands = splitCommands(line);
  const out: Candidate[] = [];
  // The raw line too: a regex written against what the user typed still fires even if the
  // splitter got the grammar wrong.
  for (const r of rules) if (r.match.kind === 'regex' && r.match.regex.test(line)) out.push({ action: r.action, rule: r, unit: line });
  for (const c of shellUnits(commands)) {
    const unit = c.argv.join(' ');
    const matched = rules.filter((r) => (r.match.kind === 'unechoed' ? unechoed : matchesCommand(r, c, unit)));
    if (matched.length === 0) out.push({ action: fallback, unit });
    for (const rule of matched) out.push({ action: rule.action, rule, unit });
  }
  return { ...decide(out), commands: commands.map((c) => c.argv) };
}

function matchesCommand(r: Rule, c: SimpleCommand, joined: string): boolean {
  const m = r.match;
  if (m.kind === 'regex') {
    if (m.regex.test(joined)) return true;
    const base = [basename(c.argv[0] ?? ''), ...c.argv.slice(1)].join(' ');
    if (base !== joined && m.regex.test(base)) return true;
    return c.wrappers.length > 0 && m.regex.test([...c.wrappers, base].join(' '));
  }
  if (m.kind === 'dynamic_command') return c.dynamic;
  if (m.kind !== 'command') return false;
  const head = basename(c.argv[0] ?? '');
  return m.commands.some((g) => globMatch(g, head)) && (!m.argsRegex || m.argsRegex.test(c.argv.slice(1).join(' ')));
}

/**
 * Units to decide for one line: each simple command, and each wrapper it ran under as a
 * command of its own, so `command: sudo` rules see `sudo rm …` and, in allow-list mode,
 * `sudo ls` needs sudo allowed as well as ls.
 */
function shellUnits(commands: SimpleCommand[]): SimpleCommand[] {
  const units: SimpleCommand[] = [];
  const seen = new Set<string>();
  for (const c of commands) {
    for (const w of c.wrappers) {
      if (!seen.has(w)) units.push({ argv: [w], wrappers: [], dynamic: false });
      seen.add(w);
    }
    units.push(c);
  }
  return units;
}

function evaluateSql(rules: Rule[], sql: string, fallback: Action, unparseable: Action): Verdict {
  const parsed = classifySql(sql);
  if (!parsed.ok) {
    return { action: unparseable, rule: UNPARSEABLE_SQL_RULE, message: `SQL could not be parsed, so it cannot be checked: ${parsed.error}` };
  }
  const out: Candidate[] = [];
  for (const st of parsed.statements) {
    const matched = rules.filter((r) => r.match.kind === 'sql' && matchesStatement(r.match, st, r.action === 'allow' ? 'all' : 'any'));
    if (matched.length === 0) out.push({ action: fallback, unit: st.type });
    for (const rule of matched) out.push({ action: rule.action, rule, unit: st.type });
  }
  return decide(out);
}

/**
 * `any` (deny, review, alert): the statement does at least one of the named things.
 * `all` (allow): everything the statement does is named, so `WITH x AS (DELETE …) SELECT …`
 * is not covered by an allow rule for SelectStmt.
 */
export function matchesStatement(m: SqlMatch, st: SqlStatement, mode: 'any' | 'all' = 'any'): boolean {
  const some = <T>(xs: T[], ok: (x: T) => boolean) => (mode === 'all' ? xs.every(ok) : xs.some(ok));
  if (m.statements && !some(st.types, (t) => m.statements!.includes(t))) return false;
  if (m.withoutWhere && !st.withoutWhere.some((t) => !m.statements || m.statements.includes(t))) return false;
  if (m.copyProgram !== undefined && m.copyProgram !== st.copyProgram) return false;
  if (m.relations && !some(st.relations, (rel) => m.relations!.some((p) => relationMatches(p, rel)))) return false;
  if (m.functions && !some(st.functions, (f) => m.functions!.some((p) => functionMatches(p, f)))) return false;
  return true;
}

/**
 * `p` is a lower-case glob, `table` or `schema.table`. An unqualified name in the SQL is tried
 * as `x` and `public.x` (and `pg_catalog.x` for `pg_*` names, which resolve there first).
 */
export function relationMatches(p: string, rel: SqlRelation): boolean {
  const name = rel.name.toLowerCase();
  const dot = p.indexOf('.');
  if (dot < 0) return globMatch(p, name);
  if (!globMatch(p.slice(dot + 1), name)) return false;
  const schemas = rel.schema !== undefined ? [rel.schema.toLowerCase()] : name.startsWith('pg_') ? ['public', 'pg_catalog'] : ['public'];
  return schemas.some((s) => globMatch(p.slice(0, dot), s));
}

/** Unqualified calls resolve through search_path: tried as `f`, `pg_catalog.f` and `public.f`. */
export function functionMatches(p: string, called: string): boolean {
  const f = called.toLowerCase();
  const dot = f.lastIndexOf('.');
  if (!p.includes('.')) return globMatch(p, dot < 0 ? f : f.slice(dot + 1));
  if (dot >= 0) return globMatch(p, f);
  return globMatch(p, `pg_catalog.${f}`) || globMatch(p, `public.${f}`);
}

function decide(cands: Candidate[]): Verdict {
  let best: Candidate | undefined;
  for (const c of cands) {
    if (!best || STRENGTH[c.action] > STRENGTH[best.action] || (STRENGTH[c.action] === STRENGTH[best.action] && c.rule && !best.rule)) best = c;
  }
  // Nothing to run (blank line, comment, bare assignment, empty query).
  if (!best) return { action: 'allow' };
  if (best.rule) return { action: best.action, rule: best.rule.name, message: best.rule.message ?? `${best.action} by rule ${best.rule.name}` };
  return best.action === 'allow'
    ? { action: 'allow' }
    : { action: best.action, message: `No rule allows "${best.unit.slice(0, 200)}"; the target's default action is ${best.action}.` };
}
