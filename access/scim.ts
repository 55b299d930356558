/**
 * SCIM 2.0 Users for deprovisioning (RFC 7643 §4.1, RFC 7644 §3), as Okta and Entra ID send
 * it: look-up by `userName`, create, replace (PUT), PATCH and DELETE. The proxy keeps only
 * what it needs; what matters is `active`: false (or DELETE) offboards the person whose email
 * or subject is the `userName`, true lets them in again (with tokens issued from then on).
 */
import { randomUUID } from 'node:crypto';
import type { Store } from './store.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { OffboardingService } from './offboarding.js';
import { auditEvent } from '../recorder/audit-events.js';

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const NS = 'scim-users';

/** RFC 7644 §3.12: the status and `scimType` of an error response. */
export class ScimError extends Error {
  constructor(public readonly status: 400 | 401 | 404 | 409 | 500, public readonly scimType: string | undefined, detail: string) {
    super(detail);
    this.name = 'ScimError';
  }
}

export interface ScimUser {
  id: string;
  userName: string;
  externalId?: string;
  active: boolean;
  displayName?: string;
  emails?: { value: string; primary?: boolean; type?: string }[];
  name?: Record<string, string>;
  created: string;
  lastModified: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Entra ID sends booleans as "True"/"False" strings in PATCH values. */
function toBool(v: unknown, what: string): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  throw new ScimError(400, 'invalidValue', `${what} must be true or false`);
}

const str = (v: unknown, what: string, max = 256): string | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max) throw new ScimError(400, 'invalidValue', `${what} must be a string of at most ${max} characters`);
  return v;
};

/** The attributes a body may set; the rest of RFC 7643's User is accepted and ignored. */
function readAttributes(body: Obj, partial: boolean): Partial<ScimUser> {
  const out: Partial<ScimUser> = {};
  const userName = str(body.userName, 'userName');
  if (userName !== undefined) {
    if (!userName.trim()) throw new ScimError(400, 'invalidValue', 'userName must not be empty');
    out.userName = userName.trim();
  } else if (!partial) throw new ScimError(400, 'invalidValue', 'userName is required');
  const externalId = str(body.externalId, 'externalId');
  if (externalId !== undefined) out.externalId = externalId;
  const displayName = str(body.displayName, 'displayName');
  if (displayName !== undefined) out.displayName = displayName;
  if (body.active !== undefined) out.active = toBool(body.active, 'active');
  if (body.emails !== undefined) {
    if (!Array.isArray(body.emails) || body.emails.some((e) => !isObj(e) || typeof e.value !== 'string')) throw new ScimError(400, 'invalidValue', 'emails must be a list of { value }');
    out.emails = (body.emails as Obj[]).slice(0, 10).map((e) => ({ value: String(e.value).slice(0, 256), ...(e.primary === true ? { primary: true } : {}), ...(typeof e.type === 'string' ? { type: e.type } : {}) }));
  }
  if (body.name !== undefined) {
    if (!isObj(body.name)) throw new ScimError(400, 'invalidValue', 'name must be an object');
    out.name = Object.fromEntries(Object.entries(body.name).filter(([, v]) => typeof v === 'string').map(([k, v]) => [k, String(v).slice(0, 256)]));
  }
  return out;
}

/** `userName eq "x"` or `externalId eq "x"` (RFC 7644 §3.4.2.2); the only filters IdPs send for users. */
export function parseFilter(filter: string): { attr: 'userName' | 'externalId'; value: string } {
  const m = /^\s*(userName|externalId)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$/i.exec(filter);
  if (!m) throw new ScimError(400, 'invalidFilter', 'only `userName eq "…"` and `externalId eq "…"` filters are supported');
  return { attr: m[1]!.toLowerCase() === 'username' ? 'userName' : 'externalId', value: m[2]!.replace(/\\(.)/g, '$1') };
}

export class ScimService {
  constructor(private readonly deps: { store: Store; audit: AuditLog; offboarding: OffboardingService; now?: () => number }) {}

  private stamp(): string {
    return new Date((this.deps.now ?? Date.now)()).toISOString();
  }

  async list(filter: string | undefined, startIndex = 1, count = 100): Promise<{ total: number; users: ScimUser[] }> {
    let users = (await this.deps.store.list<ScimUser>(NS)).sort((a, b) => a.created.localeCompare(b.created));
    if (filter) {
      const f = parseFilter(filter);
      // userName is case-insensitive (RFC 7643 §4.1.1); externalId is case-exact.
      users = users.filter((u) => (f.attr === 'userName' ? u.userName.toLowerCase() === f.value.toLowerCase() : u.externalId === f.value));
    }
    const from = Math.max(1, Math.floor(startIndex)) - 1;
    return { total: users.length, users: users.slice(from, from + Math.max(0, Math.min(200, Math.floor(count)))) };
  }

  async get(id: string): Promise<ScimUser> {
    const u = await this.deps.store.get<ScimUser>(NS, id);
    if (!u) throw new ScimError(404, undefined, `no user ${id}`);
    return u;
  }

  async create(body: unknown): Promise<ScimUser> {
    if (!isObj(body)) throw new ScimError(400, 'invalidSyntax', 'the body must be a User object');
    const attrs = readAttributes(body, false);
    const taken = (await this.list(`userName eq "${attrs.userName!.replace(/["\\]/g, '\\$&')}"`)).total > 0;
    if (taken) throw new ScimError(409, 'uniqueness', `userName ${attrs.userName} exists already`);
    const now = this.stamp();
    const user: ScimUser = { id: randomUUID(), active: true, ...attrs, userName: attrs.userName!, created: now, lastModified: now };
    await this.deps.store.set(NS, user.id, user);
    await this.deps.audit.append(auditEvent('scim.user.create', { actor: 'scim', user: user.userName, id: user.id, active: user.active }));
    if (!user.active) await this.transition(user, true);
    return user;
  }

  /** PUT: the whole resource again (Okta deactivates this way). */
  async replace(id: string, body: unknown): Promise<ScimUser> {
    if (!isObj(body)) throw new ScimError(400, 'invalidSyntax', 'the body must be a User object');
    const cur = await this.get(id);
    const attrs = readAttributes(body, false);
    return this.save(cur, { ...attrs, active: attrs.active ?? true });
  }

  /** PATCH (RFC 7644 §3.5.2): add/replace of `active` and the other kept attributes. */
  async patch(id: string, body: unknown): Promise<ScimUser> {
    if (!isObj(body) || !Array.isArray(body.Operations) || body.Operations.length === 0) throw new ScimError(400, 'invalidSyntax', 'a PatchOp needs a non-empty Operations list');
    const cur = await this.get(id);
    const next: Partial<ScimUser> = {};
    for (const op of body.Operations as unknown[]) {
      if (!isObj(op) || typeof op.op !== 'string') throw new ScimError(400, 'invalidSyntax', 'each operation needs an op');
      const kind = op.op.toLowerCase();
      if (kind !== 'replace' && kind !== 'add') throw new ScimError(400, 'invalidValue', `op "${op.op}" is not supported here (add, replace)`);
      const path = op.path === undefined ? undefined : str(op.path, 'path');
      const value = path === undefined ? op.value : { [path]: op.value };
      if (!isObj(value)) throw new ScimError(400, 'invalidValue', 'an operation without a path needs an object value');
      Object.assign(next, readAttributes(value, true));
    }
    return this.save(cur, next);
  }

  async delete(id: string): Promise<void> {
    const cur = await this.get(id);
    if (cur.active) await this.transition(cur, true);
    await this.deps.store.delete(NS, id);
    await this.deps.audit.append(auditEvent('scim.user.delete', { actor: 'scim', user: cur.userName, id }));
  }

  private async save(cur: ScimUser, changes: Partial<ScimUser>): Promise<ScimUser> {
    const next: ScimUser = { ...cur, ...changes, id: cur.id, created: cur.created, lastModified: this.stamp() };
    await this.deps.store.set(NS, cur.id, next);
    if (cur.active && !next.active) await this.transition(next, true);
    else if (!cur.active && next.active) await this.transition(next, false);
    return next;
  }

  /** active → false offboards; false → true reinstates. */
  private async transition(user: ScimUser, offboard: boolean): Promise<void> {
    if (offboard) {
      await this.deps.offboarding.offboard(undefined, user.userName, 'deactivated by the identity provider (SCIM)', { by: 'scim', emails: user.emails?.map((e) => e.value) });
    } else {
      await this.deps.offboarding.reinstate(user.userName, 'scim');
    }
  }
}

/** The JSON a resource is sent as (RFC 7643 §3.1 `meta`). */
export function toResource(u: ScimUser, base: string): Obj {
  const { created, lastModified, ...rest } = u;
  return { schemas: [USER_SCHEMA], ...rest, meta: { resourceType: 'User', created, lastModified, location: `${base}/scim/v2/Users/${u.id}` } };
}
