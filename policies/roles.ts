import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { parseDuration } from '../config/duration.js';

export interface RequestScope {
  targets: string[];
  logins: string[];
  maxDurationMs: number;
  /** `require_mfa: true`: only a multi-factor sign-in may request and use this scope. */
  requireMfa?: boolean;
  /** `max_auth_age: 15m`: the sign-in (`auth_time`) must be at most this old. */
  maxAuthAgeMs?: number;
}

export interface Role {
  name: string;
  groups: string[];
  canRequest: RequestScope[];
  canApprove: string[];
  canAudit: boolean;
  canEditPolicies: boolean;
  /** `can_offboard: true`: the security capability (`pam offboard`, discovery). */
  canOffboard?: boolean;
  /** `require_mfa` / `max_auth_age` on a role: its approving and security powers need a multi-factor, recent sign-in. */
  requireMfa?: boolean;
  maxAuthAgeMs?: number;
  /** May publish policy files that define or change roles (issue 12; never to widen their own). */
  canEditRoles: boolean;
}

export class PolicyFileError extends Error {
  constructor(public readonly file: string, public readonly key: string, why: string) {
    super(`${file}: ${key}: ${why}`);
    this.name = 'PolicyFileError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function strList(v: unknown, file: string, key: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) throw new PolicyFileError(file, key, 'must be a list of names');
  return v as string[];
}

export function parseRoles(doc: unknown, file: string): Role[] {
  if (!isObj(doc) || doc.roles === undefined) return [];
  if (!Array.isArray(doc.roles)) throw new PolicyFileError(file, 'roles', 'must be a list');
  return doc.roles.map((r, i) => {
    const key = `roles[${i}]`;
    if (!isObj(r)) throw new PolicyFileError(file, key, 'must be a mapping');
    for (const k of Object.keys(r)) {
      if (!['name', 'groups', 'can_request', 'can_approve', 'can_audit', 'can_edit_policies', 'can_edit_roles', 'can_offboard', 'require_mfa', 'max_auth_age'].includes(k)) {
        throw new PolicyFileError(file, `${key}.${k}`, 'unknown key');
      }
    }
    if (typeof r.name !== 'string' || !r.name) throw new PolicyFileError(file, `${key}.name`, 'is required');
    const canRequest = (r.can_request ?? []) as unknown;
    if (!Array.isArray(canRequest)) throw new PolicyFileError(file, `${key}.can_request`, 'must be a list');
    const scopes = canRequest.map((s, j) => {
      const sk = `${key}.can_request[${j}]`;
      if (!isObj(s)) throw new PolicyFileError(file, sk, 'must be { targets, logins, max_duration }');
      if (typeof s.max_duration !== 'string') throw new PolicyFileError(file, `${sk}.max_duration`, 'is required, e.g. 1h');
      let maxDurationMs: number;
      try {
        maxDurationMs = parseDuration(s.max_duration);
      } catch (e) {
        throw new PolicyFileError(file, `${sk}.max_duration`, (e as Error).message);
      }
      for (const k of Object.keys(s)) {
        if (!['targets', 'logins', 'max_duration', 'require_mfa', 'max_auth_age'].includes(k)) throw new PolicyFileError(file, `${sk}.${k}`, 'unknown key');
      }
      return { targets: strList(s.targets, file, `${sk}.targets`), logins: strList(s.logins, file, `${sk}.logins`), maxDurationMs, ...mfaRule(s, file, sk) };
    });
    for (const flag of ['can_audit', 'can_edit_policies', 'can_edit_roles', 'can_offboard'] as const) {
      if (r[flag] !== undefined && typeof r[flag] !== 'boolean') throw new PolicyFileError(file, `${key}.${flag}`, 'must be true or false');
    }
    return {
      name: r.name,
      groups: strList(r.groups, file, `${key}.groups`),
      canRequest: scopes,
      canApprove: strList(r.can_approve, file, `${key}.can_approve`),
      canAudit: r.can_audit === true,
      canEditPolicies: r.can_edit_policies === true,
      canEditRoles: r.can_edit_roles === true,
      ...(r.can_offboard === true ? { canOffboard: true } : {}),
      ...mfaRule(r, file, key),
    };
  });
}

/** `require_mfa` and `max_auth_age` of a role or a can_request entry. */
function mfaRule(o: Obj, file: string, key: string): { requireMfa?: boolean; maxAuthAgeMs?: number } {
  const out: { requireMfa?: boolean; maxAuthAgeMs?: number } = {};
  if (o.require_mfa !== undefined) {
    if (typeof o.require_mfa !== 'boolean') throw new PolicyFileError(file, `${key}.require_mfa`, 'must be true or false');
    out.requireMfa = o.require_mfa;
  }
  if (o.max_auth_age !== undefined) {
    if (typeof o.max_auth_age !== 'string') throw new PolicyFileError(file, `${key}.max_auth_age`, 'must be a duration like 15m');
    try {
      out.maxAuthAgeMs = parseDuration(o.max_auth_age);
    } catch (e) {
      throw new PolicyFileError(file, `${key}.max_auth_age`, (e as Error).message);
    }
  }
  return out;
}

/** Reads every *.yaml / *.yml file in the folder (sorted) and collects their roles. */
export function loadRoles(dir: string): Role[] {
  const roles: Role[] = [];
  const seen = new Set<string>();
  for (const name of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const file = join(dir, name);
    let doc: unknown;
    try {
      doc = YAML.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new PolicyFileError(file, '(yaml)', (e as Error).message.split('\n')[0]!);
    }
    for (const role of parseRoles(doc, file)) {
      if (seen.has(role.name)) throw new PolicyFileError(file, 'roles', `role "${role.name}" is defined twice`);
      seen.add(role.name);
      roles.push(role);
    }
  }
  return roles;
}

/** Glob match for names: only "*" (any run) and "?" (one char). */
export function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$');
  return re.test(name);
}

export function rolesOf(roles: Role[], groups: string[]): Role[] {
  return roles.filter((r) => r.groups.some((g) => groups.includes(g)));
}
