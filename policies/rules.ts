/**
 * The `command_rules` schema and its loader. Rules live in the same policies_dir YAML files as
 * `roles` (read by roles.ts); this module reads `command_rules`, `default_action` and
 * `unparseable_sql` and refuses anything else it does not know, naming file, rule and key.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import type { Action } from './policy.types.js';
import { PolicyFileError } from './roles.js';

export { PolicyFileError };

export const ACTIONS: readonly Action[] = ['allow', 'alert', 'review', 'deny'];
/** Strength for precedence: deny > review > alert > allow. */
export const STRENGTH: Record<Action, number> = { allow: 0, alert: 1, review: 2, deny: 3 };
export const CHANNELS = ['sftp', 'scp', 'port-forward', 'agent-forward', 'x11', 'subsystem'] as const;
export type Channel = (typeof CHANNELS)[number];

export type ShellMatch =
  | { kind: 'regex'; regex: RegExp }
  | { kind: 'command'; commands: string[]; argsRegex?: RegExp }
  | { kind: 'dynamic_command' }
  /** Input typed with echo off (a password at a prompt, or anything after `stty -echo`): every command of such a line. */
  | { kind: 'unechoed' };
export interface ChannelMatch { kind: 'channel'; channels: Channel[]; destination?: string }
export interface SqlMatch {
  kind: 'sql';
  statements?: string[];
  relations?: string[];
  functions?: string[];
  withoutWhere?: boolean;
  copyProgram?: boolean;
}

export interface Rule {
  name: string;
  file: string;
  protocol: 'ssh' | 'postgres';
  /** Target-name globs; ["*"] when omitted. */
  targets: string[];
  /** Login globs; empty = any login. */
  logins: string[];
  /** Role names; empty = anyone. */
  roles: string[];
  match: ShellMatch | ChannelMatch | SqlMatch;
  action: Action;
  message?: string;
}

export interface RuleSet {
  rules: Rule[];
  /** `default_action` from the files: target glob → action. The strongest applicable one and the target's own default both count. */
  defaults: Array<{ target: string; action: Action; file: string }>;
  /** What unparseable SQL gets (rule `unparseable-sql`); deny unless a file says otherwise. */
  unparseableSql: Action;
}

/** What one file contributes; kept per file so a broken edit leaves that file's last good rules in force. */
export interface RuleFile {
  file: string;
  rules: Rule[];
  defaults: RuleSet['defaults'];
  unparseableSql?: Action;
}

const TOP_KEYS = ['roles', 'command_rules', 'default_action', 'unparseable_sql'];
const RULE_KEYS = ['name', 'protocol', 'targets', 'logins', 'roles', 'match', 'action', 'message'];
const SSH_MATCH_KEYS = ['regex', 'command', 'args_regex', 'channel', 'destination', 'dynamic_command', 'unechoed'];
const SQL_MATCH_KEYS = ['statements', 'relations', 'functions', 'without_where', 'copy_program'];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function action(v: unknown, file: string, key: string): Action {
  if (typeof v !== 'string' || !ACTIONS.includes(v as Action)) throw new PolicyFileError(file, key, `must be one of deny, review, alert, allow (got ${JSON.stringify(v)})`);
  return v as Action;
}

function names(v: unknown, file: string, key: string, opts: { single?: boolean; pattern?: RegExp; what?: string } = {}): string[] {
  const list = opts.single && typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.some((x) => typeof x !== 'string' || x === '')) {
    throw new PolicyFileError(file, key, `must be a non-empty list of ${opts.what ?? 'names'}`);
  }
  for (const x of list as string[]) {
    if (opts.pattern && !opts.pattern.test(x)) throw new PolicyFileError(file, key, `"${x}" is not a valid ${opts.what ?? 'name'}`);
  }
  return list as string[];
}

function regex(v: unknown, file: string, key: string): RegExp {
  if (typeof v !== 'string' || v === '') throw new PolicyFileError(file, key, 'must be a non-empty regular expression string');
  try {
    return new RegExp(v);
  } catch (e) {
    throw new PolicyFileError(file, key, `invalid regular expression: ${(e as Error).message}`);
  }
}

function bool(v: unknown, file: string, key: string): boolean {
  if (typeof v !== 'boolean') throw new PolicyFileError(file, key, 'must be true or false');
  return v;
}

function parseShellMatch(m: Obj, file: string, key: string): ShellMatch | ChannelMatch {
  for (const k of Object.keys(m)) {
    if (SQL_MATCH_KEYS.includes(k)) throw new PolicyFileError(file, `${key}.${k}`, 'is a postgres matcher; this rule has protocol: ssh');
    if (!SSH_MATCH_KEYS.includes(k)) throw new PolicyFileError(file, `${key}.${k}`, `unknown key (ssh matchers: ${SSH_MATCH_KEYS.join(', ')})`);
  }
  const present = ['regex', 'command', 'channel', 'dynamic_command', 'unechoed'].filter((k) => m[k] !== undefined);
  if (present.length !== 1) throw new PolicyFileError(file, key, `needs exactly one of regex, command, channel, dynamic_command, unechoed (got ${present.join(', ') || 'none'})`);
  if (m.args_regex !== undefined && m.command === undefined) throw new PolicyFileError(file, `${key}.args_regex`, 'only goes with command');
  if (m.destination !== undefined && m.channel === undefined) throw new PolicyFileError(file, `${key}.destination`, 'only goes with channel');
  if (m.regex !== undefined) return { kind: 'regex', regex: regex(m.regex, file, `${key}.regex`) };
  if (m.command !== undefined) {
    const commands = names(m.command, file, `${key}.command`, { single: true, what: 'command names' });
    const slash = commands.find((c) => c.includes('/'));
    if (slash) throw new PolicyFileError(file, `${key}.command`, `"${slash}": give the basename (rm, not /bin/rm); paths are matched by basename`);
    return { kind: 'command', commands, argsRegex: m.args_regex === undefined ? undefined : regex(m.args_regex, file, `${key}.args_regex`) };
  }
  if (m.channel !== undefined) {
    const channels = names(m.channel, file, `${key}.channel`, { single: true, what: 'channels' });
    const bad = channels.find((c) => !(CHANNELS as readonly string[]).includes(c));
    if (bad) throw new PolicyFileError(file, `${key}.channel`, `"${bad}" is not one of ${CHANNELS.join(', ')}`);
    if (m.destination !== undefined && (typeof m.destination !== 'string' || m.destination === '')) throw new PolicyFileError(file, `${key}.destination`, 'must be a "host:port" glob');
    return { kind: 'channel', channels: channels as Channel[], destination: m.destination as string | undefined };
  }
  if (m.unechoed !== undefined) {
    if (m.unechoed !== true) throw new PolicyFileError(file, `${key}.unechoed`, 'must be true');
    return { kind: 'unechoed' };
  }
  if (m.dynamic_command !== true) throw new PolicyFileError(file, `${key}.dynamic_command`, 'must be true');
  return { kind: 'dynamic_command' };
}

function parseSqlMatch(m: Obj, file: string, key: string): SqlMatch {
  for (const k of Object.keys(m)) {
    if (SSH_MATCH_KEYS.includes(k)) throw new PolicyFileError(file, `${key}.${k}`, 'is an ssh matcher; this rule has protocol: postgres');
    if (!SQL_MATCH_KEYS.includes(k)) throw new PolicyFileError(file, `${key}.${k}`, `unknown key (postgres matchers: ${SQL_MATCH_KEYS.join(', ')})`);
  }
  if (Object.keys(m).length === 0) throw new PolicyFileError(file, key, `needs at least one of ${SQL_MATCH_KEYS.join(', ')}`);
  const out: SqlMatch = { kind: 'sql' };
  if (m.statements !== undefined) out.statements = names(m.statements, file, `${key}.statements`, { pattern: /^[A-Z][A-Za-z]*Stmt$/, what: 'libpg-query statement node names (e.g. DropStmt)' });
  if (m.relations !== undefined) out.relations = names(m.relations, file, `${key}.relations`, { pattern: /^[^.\s]+(\.[^.\s]+)?$/, what: 'relation globs (schema.table or table)' }).map((r) => r.toLowerCase());
  if (m.functions !== undefined) out.functions = names(m.functions, file, `${key}.functions`, { pattern: /^[^.\s]+(\.[^.\s]+)?$/, what: 'function names (name or schema.name)' }).map((f) => f.toLowerCase());
  if (m.without_where !== undefined) {
    out.withoutWhere = bool(m.without_where, file, `${key}.without_where`);
    const other = out.statements?.find((s) => s !== 'UpdateStmt' && s !== 'DeleteStmt');
    if (out.withoutWhere && other) throw new PolicyFileError(file, `${key}.without_where`, `applies to UpdateStmt and DeleteStmt only, not ${other}`);
  }
  if (m.copy_program !== undefined) out.copyProgram = bool(m.copy_program, file, `${key}.copy_program`);
  if (out.withoutWhere === false && out.copyProgram === undefined && !out.statements && !out.relations && !out.functions) {
    throw new PolicyFileError(file, key, 'without_where: false alone matches nothing useful; name statements, relations or functions');
  }
  return out;
}

function parseRule(r: unknown, file: string, i: number): Rule {
  const at = `command_rules[${i}]`;
  if (!isObj(r)) throw new PolicyFileError(file, at, 'must be a mapping with name, protocol, match, action');
  const key = typeof r.name === 'string' && r.name ? `${at} (${r.name})` : at;
  for (const k of Object.keys(r)) if (!RULE_KEYS.includes(k)) throw new PolicyFileError(file, `${key}.${k}`, `unknown key (allowed: ${RULE_KEYS.join(', ')})`);
  if (typeof r.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(r.name)) throw new PolicyFileError(file, `${key}.name`, 'is required: letters, digits, ".", "_", "-"');
  if (r.name === 'unparseable-sql') throw new PolicyFileError(file, `${key}.name`, '"unparseable-sql" is reserved (use the top-level unparseable_sql key)');
  if (r.protocol !== 'ssh' && r.protocol !== 'postgres') throw new PolicyFileError(file, `${key}.protocol`, 'must be ssh or postgres');
  if (!isObj(r.match)) throw new PolicyFileError(file, `${key}.match`, 'is required: a mapping of matchers');
  const match = r.protocol === 'ssh' ? parseShellMatch(r.match, file, `${key}.match`) : parseSqlMatch(r.match, file, `${key}.match`);
  if (r.message !== undefined && typeof r.message !== 'string') throw new PolicyFileError(file, `${key}.message`, 'must be a string');
  return {
    name: r.name,
    file,
    protocol: r.protocol,
    targets: r.targets === undefined ? ['*'] : names(r.targets, file, `${key}.targets`, { what: 'target names or globs' }),
    logins: r.logins === undefined ? [] : names(r.logins, file, `${key}.logins`, { what: 'login names or globs' }),
    roles: r.roles === undefined ? [] : names(r.roles, file, `${key}.roles`, { what: 'role names' }),
    match,
    action: action(r.action, file, `${key}.action`),
    message: r.message as string | undefined,
  };
}

/** Validates one parsed YAML document. Throws PolicyFileError naming file, rule and key. */
export function parseRuleFile(doc: unknown, file: string): RuleFile {
  const out: RuleFile = { file, rules: [], defaults: [] };
  if (doc === null || doc === undefined) return out;
  if (!isObj(doc)) throw new PolicyFileError(file, '(top level)', 'must be a mapping');
  for (const k of Object.keys(doc)) if (!TOP_KEYS.includes(k)) throw new PolicyFileError(file, k, `unknown top-level key (allowed: ${TOP_KEYS.join(', ')})`);
  if (doc.command_rules !== undefined) {
    if (!Array.isArray(doc.command_rules)) throw new PolicyFileError(file, 'command_rules', 'must be a list');
    const seen = new Set<string>();
    out.rules = doc.command_rules.map((r, i) => {
      const rule = parseRule(r, file, i);
      if (seen.has(rule.name)) throw new PolicyFileError(file, `command_rules[${i}] (${rule.name}).name`, 'is used twice in this file');
      seen.add(rule.name);
      return rule;
    });
  }
  if (doc.default_action !== undefined) {
    const d = doc.default_action;
    if (typeof d === 'string') out.defaults.push({ target: '*', action: action(d, file, 'default_action'), file });
    else if (isObj(d)) for (const [target, a] of Object.entries(d)) out.defaults.push({ target, action: action(a, file, `default_action.${target}`), file });
    else throw new PolicyFileError(file, 'default_action', 'must be an action, or a mapping of target glob to action');
  }
  if (doc.unparseable_sql !== undefined) out.unparseableSql = action(doc.unparseable_sql, file, 'unparseable_sql');
  return out;
}

/** Reads and validates one file. */
export function loadRuleFile(file: string): RuleFile {
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PolicyFileError(file, '(yaml)', (e as Error).message.split('\n')[0]!);
  }
  return parseRuleFile(doc, file);
}

export function policyFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f));
}

/** Joins per-file results in file order; a rule name used in two files is an error. */
export function combineRuleFiles(files: RuleFile[]): RuleSet {
  const set: RuleSet = { rules: [], defaults: [], unparseableSql: 'deny' };
  const owner = new Map<string, string>();
  let unparseable: Action | undefined;
  for (const f of files) {
    for (const r of f.rules) {
      const prev = owner.get(r.name);
      if (prev !== undefined) throw new PolicyFileError(f.file, `command_rules (${r.name}).name`, `is already defined in ${prev}`);
      owner.set(r.name, f.file);
      set.rules.push(r);
    }
    set.defaults.push(...f.defaults);
    if (f.unparseableSql && (unparseable === undefined || STRENGTH[f.unparseableSql] > STRENGTH[unparseable])) unparseable = f.unparseableSql;
  }
  set.unparseableSql = unparseable ?? 'deny';
  return set;
}

/** Loads every *.yaml / *.yml in `dir` (sorted). Throws on the first invalid file. */
export function loadRules(dir: string): RuleSet {
  return combineRuleFiles(policyFiles(dir).map(loadRuleFile));
}
