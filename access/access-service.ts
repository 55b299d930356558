import { GrantIndex } from './grant-index.js';
import { StoreUnavailable } from './store-shared.js';
import { randomBytes } from 'node:crypto';
import type { Identity } from './identity.types.js';
import type { Store } from './store.types.js';
import { AccessDenied, type AccessGate, type AccessRequest, type Authorized, type Grant } from './access.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { Target } from '../config/config.types.js';
import { rolesOf, type Role } from '../policies/roles.js';
import { approvingRoles, capabilitiesOf, mayApprove, mayAudit, mayOversee, mayRequest, requestScopes, type Capabilities } from './capabilities.js';
import { formatDuration } from '../config/duration.js';
import { approverRefusal, combineMfa, mfaRefusal } from './mfa-policy.js';
import type { MfaRule } from '../config/config.types.js';
import { auditBy } from '../recorder/audit-events.js';

/** A refused API action; `status` is the HTTP status the API answers with. */
export class AccessError extends Error {
  constructor(public readonly status: 400 | 403 | 404 | 409, message: string) {
    super(message);
    this.name = 'AccessError';
  }
}

const REQUESTS = 'requests';
const GRANTS = 'grants';
const REVOKED = 'grant-revoked';
/** Requests (decided or not) are kept this long, then expire from the store. */
const REQUEST_KEEP_MS = 7 * 24 * 3600_000;
/** A pending request nobody decided in this time can no longer be approved. */
const PENDING_MAX_MS = 24 * 3600_000;
const ID = /^(req|gr)_[0-9a-f]{16}$/;

export interface AccessServiceDeps {
  store: Store;
  audit: AuditLog;
  roles: () => Role[];
  targets: () => Target[];
  /** `mfa.acr_values` of the config: acr values that count as multi-factor. */
  acrValues?: () => readonly string[];
  /**
   * Refuses identities that were offboarded (access/offboarding.ts), asked at every session
   * open; resolves to the message to show, or undefined.
   */
  refusal?: (identity: Identity) => Promise<string | undefined>;
  /** Called after each authorized session open (access/credential-use.ts records it). */
  onAuthorized?: (auth: Authorized) => Promise<void>;
  now?: () => number;
}

/** The requirement the weakest of several usable scopes sets (the one that lets the user in). */
function weakest(rules: MfaRule[]): MfaRule {
  if (rules.length === 0) return {};
  const out: MfaRule = {};
  if (rules.every((r) => r.requireMfa)) out.requireMfa = true;
  if (rules.every((r) => r.maxAuthAgeMs !== undefined)) out.maxAuthAgeMs = Math.max(...rules.map((r) => r.maxAuthAgeMs!));
  return out;
}

/**
 * JIT access: requests, approvals, grants, revocation, and the gate the brokers ask before
 * opening a session. All state is in the store; revocations are broadcast so every node ends
 * its live sessions.
 */
export class AccessService implements AccessGate {
  private readonly now: () => number;
  private readonly watchers = new Map<string, Set<(reason: string) => void>>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private readonly grantIndex: GrantIndex;

  constructor(private readonly deps: AccessServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.grantIndex = new GrantIndex(deps.store, this.now);
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.deps.store.subscribe(REVOKED, (msg) => {
      const m = msg as { id?: string; by?: string };
      if (typeof m?.id === 'string') this.fire(m.id, `access revoked${m.by ? ` by ${m.by}` : ''}`);
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  rolesFor(identity: Identity): Role[] {
    return rolesOf(this.deps.roles(), identity.groups);
  }

  capabilitiesOf(identity: Identity): Capabilities {
    return capabilitiesOf(identity, this.deps.roles());
  }

  private newId(prefix: 'req' | 'gr'): string {
    return `${prefix}_${randomBytes(8).toString('hex')}`;
  }

  async request(identity: Identity, input: { target: string; login: string; durationMs: number; reason: string }): Promise<AccessRequest> {
    const target = this.deps.targets().find((t) => t.name === input.target);
    if (!target) throw new AccessError(404, `unknown target "${input.target}"`);
    if (!target.logins[input.login]) throw new AccessError(400, `target "${target.name}" has no login "${input.login}"`);
    if (!input.reason?.trim()) throw new AccessError(400, 'a reason is required');
    if (!Number.isFinite(input.durationMs) || input.durationMs <= 0) throw new AccessError(400, 'duration must be positive');
    const cover = mayRequest(identity, this.deps.roles(), target.name, input.login);
    if (!cover) {
      await this.deps.audit.append(auditBy(identity, 'request.refused', { target: target.name, login: input.login, why: 'no role may request it' }));
      throw new AccessError(403, `none of your roles may request ${input.login}@${target.name}`);
    }
    // A scope with require_mfa counts only for a multi-factor sign-in: the usable scopes are
    // those whose step-up (with the target's) this token meets.
    const targetRule: MfaRule = { requireMfa: target.requireMfa, maxAuthAgeMs: target.maxAuthAgeMs };
    const what = `requesting ${input.login}@${target.name}`;
    let firstRefusal: string | undefined;
    const usable = requestScopes(identity, this.deps.roles(), target.name, input.login).filter(({ scope }) => {
      const why = this.mfaCheck(identity, combineMfa(targetRule, scope), what);
      firstRefusal ??= why;
      return !why;
    });
    if (usable.length === 0) {
      await this.deps.audit.append(auditBy(identity, 'request.refused', { target: target.name, login: input.login, why: 'mfa required', detail: firstRefusal }));
      throw new AccessError(403, firstRefusal!);
    }
    const allowedMax = Math.max(...usable.map((u) => u.scope.maxDurationMs));
    if (input.durationMs > allowedMax) {
      await this.deps.audit.append(auditBy(identity, 'request.refused', { target: target.name, login: input.login, why: 'duration above max' }));
      throw new AccessError(400, `duration ${formatDuration(input.durationMs)} is above the maximum ${formatDuration(allowedMax)} for ${input.login}@${target.name}`);
    }
    const mfa = combineMfa(targetRule, weakest(usable.map((u) => ({ requireMfa: u.scope.requireMfa, maxAuthAgeMs: u.scope.maxAuthAgeMs }))));
    const req: AccessRequest = {
      id: this.newId('req'),
      subject: identity.subject,
      user: identity.user,
      ...(identity.email ? { email: identity.email } : {}),
      roles: [...new Set(usable.map((u) => u.role.name))],
      target: target.name,
      login: input.login,
      durationMs: input.durationMs,
      reason: input.reason.trim().slice(0, 1000),
      status: 'pending',
      createdAt: this.now(),
      ...(mfa.requireMfa || mfa.maxAuthAgeMs !== undefined ? { mfa } : {}),
    };
    await this.deps.store.set(REQUESTS, req.id, req, { ttlMs: REQUEST_KEEP_MS });
    await this.deps.audit.append(auditBy(identity, 'request', { request: req.id, target: req.target, login: req.login, duration: formatDuration(req.durationMs), reason: req.reason }));
    return req;
  }

  canDecide(identity: Identity, req: AccessRequest): boolean {
    return mayApprove(identity, this.capabilitiesOf(identity), req) === 'yes';
  }

  private async decide(identity: Identity, id: string, approve: boolean, reason?: string, durationMs?: number): Promise<AccessRequest> {
    if (!ID.test(id)) throw new AccessError(404, 'no such request');
    const current = await this.deps.store.get<AccessRequest>(REQUESTS, id);
    if (!current) throw new AccessError(404, 'no such request');
    if (durationMs !== undefined && (!Number.isFinite(durationMs) || durationMs <= 0)) throw new AccessError(400, 'duration must be positive');
    if (durationMs !== undefined && durationMs > current.durationMs) throw new AccessError(400, `duration ${formatDuration(durationMs)} is longer than the ${formatDuration(current.durationMs)} asked; approve at most what was asked`);
    const shorter = durationMs !== undefined && durationMs < current.durationMs ? durationMs : undefined;
    const refuse = async (status: 403 | 409, why: string) => {
      await this.deps.audit.append(auditBy(identity, approve ? 'approve.refused' : 'deny.refused', { request: id, why }));
      return new AccessError(status, why);
    };
    const check = mayApprove(identity, this.capabilitiesOf(identity), current);
    if (check === 'own') throw await refuse(403, 'nobody may approve or deny their own request');
    if (check === 'no-role') throw await refuse(403, `none of your roles may approve requests from ${current.roles.join(', ')}`);
    // An approving role with require_mfa counts only for a multi-factor, recent sign-in.
    const approving = approvingRoles(identity, this.deps.roles(), current);
    const stepUp = approverRefusal(identity, approving, { now: this.now(), acrValues: this.deps.acrValues?.() ?? [], what: `${approve ? 'approving' : 'denying'} ${current.login}@${current.target}` });
    if (stepUp) throw await refuse(403, stepUp);
    const decidedAt = this.now();
    let grant: Grant | undefined;
    // The status flip is one atomic update, so two approvers racing cannot both create a grant.
    const updated = await this.deps.store.update<AccessRequest>(REQUESTS, id, (cur) => {
      if (!cur) throw new AccessError(404, 'no such request');
      if (cur.status !== 'pending') throw new AccessError(409, `request is already ${cur.status}`);
      if (decidedAt - cur.createdAt > PENDING_MAX_MS) return { ...cur, status: 'expired' };
      const next: AccessRequest = { ...cur, status: approve ? 'approved' : 'denied', decidedBy: identity.user, decidedAt, decisionReason: reason?.slice(0, 1000), ...(approve && shorter ? { approvedDurationMs: shorter } : {}) };
      if (approve) {
        grant = { id: this.newId('gr'), requestId: cur.id, subject: cur.subject, user: cur.user, ...(cur.email ? { email: cur.email } : {}), target: cur.target, login: cur.login, approvedBy: identity.user, startsAt: decidedAt, expiresAt: decidedAt + (shorter ?? cur.durationMs), ...(cur.mfa ? { mfa: cur.mfa } : {}) };
        next.grantId = grant.id;
      }
      return next;
    }, { ttlMs: REQUEST_KEEP_MS });
    if (!updated || updated.status === 'expired') throw await refuse(409, 'request expired before it was decided');
    if (grant) {
      await this.deps.store.set(GRANTS, grant.id, grant, { ttlMs: grant.expiresAt - this.now() });
      await this.grantIndex.add(grant);
      await this.deps.audit.append(auditBy(identity, 'approve', { request: id, reason, ...(shorter ? { duration: formatDuration(shorter), asked: formatDuration(current.durationMs) } : {}) }));
      await this.deps.audit.append(auditBy(identity, 'grant', { grant: grant.id, request: id, user: grant.user, target: grant.target, login: grant.login, expires: new Date(grant.expiresAt).toISOString() }));
    } else {
      await this.deps.audit.append(auditBy(identity, 'deny', { request: id, reason }));
    }
    return updated;
  }

  /** `durationMs`: grant less time than asked (never more); the grant expires that much after now. */
  approve(identity: Identity, id: string, reason?: string, durationMs?: number): Promise<AccessRequest> {
    return this.decide(identity, id, true, reason, durationMs);
  }

  deny(identity: Identity, id: string, reason: string): Promise<AccessRequest> {
    if (!reason?.trim()) throw new AccessError(400, 'a reason is required to deny');
    return this.decide(identity, id, false, reason);
  }

  isOverseer(identity: Identity): boolean {
    return mayOversee(this.capabilitiesOf(identity));
  }

  /** Own requests, plus those this identity could decide, plus all for auditors. Newest first. */
  async listRequests(identity: Identity): Promise<AccessRequest[]> {
    const caps = this.capabilitiesOf(identity);
    const all = await this.deps.store.list<AccessRequest>(REQUESTS);
    return all.filter((r) => mayAudit(caps) || r.subject === identity.subject || mayApprove(identity, caps, r) === 'yes').sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Active grants: a requester sees their own, holders of can_approve or can_audit see all. */
  async listGrants(identity: Identity): Promise<Grant[]> {
    const now = this.now();
    const all = (await this.deps.store.list<Grant>(GRANTS)).filter((g) => g.expiresAt > now);
    return (this.isOverseer(identity) ? all : all.filter((g) => g.subject === identity.subject)).sort((a, b) => a.expiresAt - b.expiresAt);
  }

  /** Active grants of a user by name, for the what-if tester's access check (the caller checks who may ask). */
  async activeGrantsOf(user: string): Promise<Grant[]> {
    const now = this.now();
    return (await this.deps.store.list<Grant>(GRANTS)).filter((g) => g.user === user && g.expiresAt > now);
  }

  async revoke(identity: Identity, grantId: string, reason?: string): Promise<Grant> {
    const grant = ID.test(grantId) ? await this.deps.store.get<Grant>(GRANTS, grantId) : undefined;
    if (!grant) throw new AccessError(404, 'no such active grant');
    const req = await this.deps.store.get<AccessRequest>(REQUESTS, grant.requestId);
    const holder = grant.subject === identity.subject;
    const couldApprove = req ? this.canDecide(identity, req) : false;
    if (!holder && !couldApprove) {
      await this.deps.audit.append(auditBy(identity, 'revoke.refused', { grant: grantId, why: 'not the holder nor an approver' }));
      throw new AccessError(403, 'only the holder or someone who could have approved it may revoke a grant');
    }
    await this.deps.store.delete(GRANTS, grantId);
    await this.deps.audit.append(auditBy(identity, 'revoke', { grant: grantId, user: grant.user, target: grant.target, login: grant.login, reason }));
    await this.deps.store.publish(REVOKED, { id: grantId, by: identity.user });
    return grant;
  }

  /** Who asked or holds access (subject, user, email), for offboarding's look-up of a person. */
  async knownPeople(): Promise<{ subject: string; user: string; email?: string }[]> {
    const reqs = await this.deps.store.list<AccessRequest>(REQUESTS);
    const grants = await this.deps.store.list<Grant>(GRANTS);
    return [...reqs, ...grants].map(({ subject, user, email }) => ({ subject, user, ...(email ? { email } : {}) }));
  }

  /**
   * Offboarding: deletes every grant of a person `match` accepts and broadcasts each revocation
   * (every node ends the sessions using them). Not audited one by one: the caller writes one entry.
   */
  async revokeWhere(match: (g: Grant) => boolean, by: string): Promise<Grant[]> {
    const gone: Grant[] = [];
    for (const g of await this.deps.store.list<Grant>(GRANTS)) {
      if (!match(g)) continue;
      if (await this.deps.store.delete(GRANTS, g.id)) gone.push(g);
      await this.deps.store.publish(REVOKED, { id: g.id, by });
    }
    return gone;
  }

  /** Offboarding: denies every pending request `match` accepts, with `reason`. */
  async cancelPendingWhere(match: (r: AccessRequest) => boolean, by: string, reason: string): Promise<AccessRequest[]> {
    const out: AccessRequest[] = [];
    for (const r of await this.deps.store.list<AccessRequest>(REQUESTS)) {
      if (r.status !== 'pending' || !match(r)) continue;
      const decidedAt = this.now();
      const updated = await this.deps.store.update<AccessRequest>(REQUESTS, r.id, (cur) => (cur && cur.status === 'pending'
        ? { ...cur, status: 'denied', decidedBy: by, decidedAt, decisionReason: reason.slice(0, 1000) }
        : cur), { ttlMs: REQUEST_KEEP_MS });
      if (updated?.status === 'denied' && updated.decidedAt === decidedAt) out.push(updated);
    }
    return out;
  }

  async authorize(identity: Identity, targetName: string, login: string, protocol: 'ssh' | 'postgres'): Promise<Authorized> {
    const refuse = async (message: string, code: AccessDenied['code']) => {
      await this.deps.audit.append(auditBy(identity, 'session.refused', { protocol, target: targetName, login, why: message }));
      return new AccessDenied(message, code);
    };
    const offboarded = await this.refusalOf(identity);
    if (offboarded) throw await refuse(offboarded, 'offboarded');
    const target = this.deps.targets().find((t) => t.name === targetName && t.protocol === protocol);
    if (!target) throw await refuse(`unknown ${protocol} target "${targetName}"`, 'unknown-target');
    if (!target.logins[login]) throw await refuse(`target "${targetName}" has no login "${login}"`, 'unknown-login');
    const now = this.now();
    const usable = (g: Grant) => g.subject === identity.subject && g.target === targetName && g.login === login && g.startsAt <= now && g.expiresAt > now;
    // The subject's own grants first (grant-index.ts); only when none is usable, every grant.
    let grants = (await this.grantIndex.of(identity.subject)).filter(usable);
    if (grants.length === 0) grants = (await this.deps.store.list<Grant>(GRANTS)).filter(usable);
    if (grants.length === 0) {
      throw await refuse(
        `no active grant for ${login}@${targetName}. Ask for one: pam request --target ${targetName} --login ${login} --duration 30m --reason "…"`,
        'no-grant',
      );
    }
    // Step-up at every open: the target's rule now, and the scope's rule the grant carries.
    const stepUp = grants.map((g) => this.mfaCheck(identity, combineMfa({ requireMfa: target.requireMfa, maxAuthAgeMs: target.maxAuthAgeMs }, g.mfa), `opening ${login}@${targetName}`));
    const passing = grants.filter((_, i) => stepUp[i] === undefined);
    if (passing.length === 0) throw await refuse(stepUp[0]!, 'mfa');
    const grant = passing.reduce((a, b) => (b.expiresAt > a.expiresAt ? b : a));
    const auth = { identity, target, login, grant } as unknown as Authorized;
    await this.deps.onAuthorized?.(auth).catch((err) => console.error('access: recording credential use failed', err));
    return auth;
  }

  /** Undefined when `identity` meets `rule`, else the message for the user. */
  mfaCheck(identity: Identity, rule: MfaRule, what: string): string | undefined {
    return mfaRefusal(identity, rule, { now: this.now(), acrValues: this.deps.acrValues?.() ?? [], what });
  }

  /** Offboarded identities are refused everywhere; a failing check refuses too (fail closed). */
  private async refusalOf(identity: Identity): Promise<string | undefined> {
    if (!this.deps.refusal) return undefined;
    try {
      return await this.deps.refusal(identity);
    } catch (err) {
      if (err instanceof StoreUnavailable) throw err; // the lifecycle says "try again" (57P03)
      return 'your access could not be checked; try again later';
    }
  }

  watchGrant(grant: Grant, onEnd: (reason: string) => void): () => void {
    let done = false;
    const once = (reason: string) => {
      if (done) return;
      done = true;
      cleanup();
      onEnd(reason);
    };
    let set = this.watchers.get(grant.id);
    if (!set) this.watchers.set(grant.id, (set = new Set()));
    set.add(once);
    // setTimeout caps near 24.8 days; grants are far shorter, but clamp to be safe.
    const timer = setTimeout(() => once('access grant expired'), Math.min(Math.max(0, grant.expiresAt - this.now()), 2 ** 31 - 1));
    // A revocation published before this watch started is caught by re-reading the grant once.
    void this.deps.store.get<Grant>(GRANTS, grant.id).then((g) => { if (!g) once('access revoked'); }, () => once('grant could not be checked'));
    const cleanup = () => {
      clearTimeout(timer);
      set!.delete(once);
      if (set!.size === 0) this.watchers.delete(grant.id);
    };
    return () => { done = true; cleanup(); };
  }

  private fire(grantId: string, reason: string): void {
    for (const cb of [...(this.watchers.get(grantId) ?? [])]) cb(reason);
  }
}
