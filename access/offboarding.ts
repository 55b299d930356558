/**
 * Offboarding in one step (`pam offboard USER`, SCIM deactivation): the person's tokens are
 * refused from the first moment on (even while still valid), their grants revoked and pending
 * requests denied, their live sessions ended on every node, their SSH key bindings removed and
 * every credential they used recently rotated. One audit entry lists all of it.
 *
 * The refusal is a record in the store under each identifier known for the person (subject,
 * email, user name), read at every token check and session open. Reinstating (SCIM
 * `active: true`) keeps refusing tokens issued before the offboarding: a stolen token stays dead.
 */
import { StoreUnavailable } from './store-shared.js';
import type { Store } from './store.types.js';
import { IdentityRevoked, TokenRejected, type Identity, type IdentityVerifier } from './identity.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { Target } from '../config/config.types.js';
import type { AccessService } from './access-service.js';
import { AccessError } from './access-service.js';
import type { SessionRegistry } from './live-sessions.js';
import type { SshKeyBindings } from './ssh-keys.js';
import type { CredentialUseLog } from './credential-use.js';
import type { Role } from '../policies/roles.js';
import { rolesOf } from '../policies/roles.js';
import { capabilitiesOf, refusalFor } from './capabilities.js';
import { auditBy, auditEvent } from '../recorder/audit-events.js';

const NS = 'offboarded';
const CHANNEL = 'offboarded';
const DEFAULT_WINDOW_MS = 30 * 86_400_000;

export interface OffboardRecord {
  /** What the operator or the IdP named (subject or email). */
  user: string;
  subjects: string[];
  emails: string[];
  /** True while the person is offboarded; false once reinstated. */
  active: boolean;
  /** When access was removed, ms since epoch; tokens issued before it are refused for good. */
  at: number;
  by: string;
  reason: string;
  reinstatedAt?: number;
  reinstatedBy?: string;
}

export interface RotationOutcome { secret: string; ok: boolean; error?: string }

export interface OffboardResult {
  user: string;
  subjects: string[];
  emails: string[];
  reason: string;
  grantsRevoked: string[];
  requestsDenied: string[];
  sessionsEnded: string[];
  keyBindingsRemoved: string[];
  credentialsRotated: RotationOutcome[];
}

export interface OffboardingDeps {
  store: Store;
  audit: AuditLog;
  access: AccessService;
  sessions: SessionRegistry;
  sshKeys: SshKeyBindings;
  uses: CredentialUseLog;
  roles: () => Role[];
  targets: () => Target[];
  /** Sessions recorded on this node (the catalog), for uses from before the use log existed. */
  recordedUses?: (sinceMs: number) => Promise<{ subject: string; user: string; target: string; login: string }[]>;
  /** Rotates one vaulted secret (access/rotation.ts); absent = credentials are listed, not rotated. */
  rotate?: (secret: string, why: string) => Promise<RotationOutcome>;
  /** `offboarding.rotate_used_within`, default 30 days. */
  windowMs?: () => number;
  now?: () => number;
}

const norm = (s: string) => s.trim().toLowerCase();

/** Who an offboarding is about: every identifier seen for the person. */
interface Person { user: string; subjects: Set<string>; emails: Set<string>; names: Set<string> }

function matcher(p: Person) {
  return (x: { subject?: string; user?: string; email?: string }) =>
    (x.subject !== undefined && p.subjects.has(x.subject)) ||
    (x.email !== undefined && p.emails.has(norm(x.email))) ||
    (x.user !== undefined && p.names.has(norm(x.user)));
}

export class OffboardingService {
  private readonly now: () => number;
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(private readonly deps: OffboardingDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Every node ends the live sessions of a person offboarded anywhere. */
  async start(): Promise<void> {
    this.unsubscribe = await this.deps.store.subscribe(CHANNEL, (msg) => {
      const m = msg as { subjects?: unknown; emails?: unknown; names?: unknown; reason?: unknown };
      if (!Array.isArray(m?.subjects)) return;
      const person: Person = { user: '', subjects: new Set(m.subjects as string[]), emails: new Set((m.emails as string[]) ?? []), names: new Set((m.names as string[]) ?? []) };
      this.deps.sessions.killWhere(matcher(person), typeof m.reason === 'string' ? m.reason : 'access removed');
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  /** Undefined when the identity may act; otherwise why not (shown to the person, audited by the caller). */
  async refusal(identity: Identity): Promise<string | undefined> {
    const keys = [...new Set([identity.subject, identity.email && norm(identity.email), norm(identity.user)].filter((k): k is string => !!k))];
    // One round trip's worth of latency: the reads go out together.
    const recs = await Promise.all(keys.map((k) => this.deps.store.get<OffboardRecord>(NS, k)));
    for (const rec of recs) {
      if (!rec) continue;
      if (rec.active) return `your access was removed on ${new Date(rec.at).toISOString()} (offboarded); ask your security team`;
      if ((identity.issuedAt ?? 0) <= rec.at) return 'this token was issued before your access was removed; sign in again for a new one';
    }
    return undefined;
  }

  /** Whether `actor` may offboard: an approver or a role with can_offboard (with its step-up). */
  private async authorize(actor: Identity): Promise<void> {
    const refused = refusalFor(capabilitiesOf(actor, this.deps.roles()), 'offboard');
    if (refused) {
      await this.deps.audit.append(auditBy(actor, 'offboard.refused', { why: 'no approving or can_offboard role' }));
      throw new AccessError(403, refused);
    }
    // The roles that carry the power, for their step-up (require_mfa on the role).
    const powers = rolesOf(this.deps.roles(), actor.groups).filter((r) => r.canApprove.length > 0 || r.canOffboard);
    const stepUp = powers.map((r) => this.deps.access.mfaCheck(actor, { requireMfa: r.requireMfa, maxAuthAgeMs: r.maxAuthAgeMs }, 'offboarding'));
    if (stepUp.every((w) => w !== undefined)) {
      await this.deps.audit.append(auditBy(actor, 'offboard.refused', { why: 'mfa required' }));
      throw new AccessError(403, stepUp[0]!);
    }
  }

  /** Every identifier the proxy has seen for `user` (a subject or an email). */
  private async resolve(user: string, extra: { emails?: string[] } = {}): Promise<Person> {
    const p: Person = { user, subjects: new Set([user]), emails: new Set([norm(user), ...(extra.emails ?? []).map(norm)]), names: new Set([norm(user)]) };
    const uses = [...(await this.deps.uses.since(0, () => true)), ...(await this.deps.access.knownPeople())];
    // Two passes: a use found by email names the subject, which finds the rest.
    for (let pass = 0; pass < 2; pass++) {
      const m = matcher(p);
      for (const u of uses) if (m(u)) { p.subjects.add(u.subject); if (u.email) p.emails.add(norm(u.email)); p.names.add(norm(u.user)); }
      for (const s of this.deps.sessions.list()) if (m(s)) { p.subjects.add(s.subject); p.names.add(norm(s.user)); }
    }
    return p;
  }

  /**
   * Removes every access of `user`. `actor` is the operator (checked: approver or can_offboard)
   * or undefined for the SCIM client, whose bearer token the route checked.
   */
  async offboard(actor: Identity | undefined, user: string, reason: string, opts: { by?: string; emails?: string[] } = {}): Promise<OffboardResult> {
    if (!user.trim()) throw new AccessError(400, 'name the user (subject or email)');
    if (!reason.trim()) throw new AccessError(400, 'a reason is required');
    if (actor) await this.authorize(actor);
    const by = actor?.user ?? opts.by ?? 'scim';
    const person = await this.resolve(user.trim(), opts);
    const at = this.now();
    const record: OffboardRecord = { user: person.user, subjects: [...person.subjects], emails: [...person.emails], active: true, at, by, reason: reason.slice(0, 1000) };
    // The refusal first, so nothing new opens while the rest is cleaned up.
    for (const k of new Set([...person.subjects, ...person.emails, ...person.names])) await this.deps.store.set(NS, k, record);
    const match = matcher(person);
    const why = `access removed: offboarded by ${by}`;
    const sessions = this.deps.sessions.killWhere(match, why);
    await this.deps.store.publish(CHANNEL, { subjects: [...person.subjects], emails: [...person.emails], names: [...person.names], reason: why });
    const grants = await this.deps.access.revokeWhere((g) => match(g), by);
    const requests = await this.deps.access.cancelPendingWhere((r) => match(r), by, `offboarded: ${reason}`);
    const keys = await this.deps.sshKeys.removeWhere((id) => match(id));
    const rotated = await this.rotateUsed(match, `offboarding ${person.user}`);
    const result: OffboardResult = {
      user: person.user, subjects: [...person.subjects], emails: [...person.emails], reason: record.reason,
      grantsRevoked: grants.map((g) => g.id), requestsDenied: requests.map((r) => r.id), sessionsEnded: sessions,
      keyBindingsRemoved: keys, credentialsRotated: rotated,
    };
    await this.deps.audit.append(actor ? auditBy(actor, 'offboard', { ...result }) : auditEvent('offboard', { actor: by, ...result }));
    return result;
  }

  /** Rotates every secret the person used within the window, each once, in parallel. */
  private async rotateUsed(match: ReturnType<typeof matcher>, why: string): Promise<RotationOutcome[]> {
    const since = this.now() - (this.deps.windowMs?.() ?? DEFAULT_WINDOW_MS);
    const secrets = new Set((await this.deps.uses.since(since, match)).map((u) => u.secret));
    const targets = this.deps.targets();
    for (const u of (await this.deps.recordedUses?.(since).catch(() => [])) ?? []) {
      if (!match(u)) continue;
      const secret = targets.find((t) => t.name === u.target)?.logins[u.login]?.secret;
      if (secret) secrets.add(secret);
    }
    const rotate = this.deps.rotate;
    return Promise.all([...secrets].sort().map(async (secret): Promise<RotationOutcome> => {
      if (!rotate) return { secret, ok: false, error: 'rotation is not available in this process' };
      try {
        return await rotate(secret, why);
      } catch (err) {
        return { secret, ok: false, error: (err as Error).message };
      }
    }));
  }

  /** SCIM `active: true`: the person may sign in again, with tokens issued from now on. */
  async reinstate(user: string, by: string): Promise<boolean> {
    const person = await this.resolve(user.trim());
    const keys = new Set([...person.subjects, ...person.emails, ...person.names]);
    let any = false;
    const at = this.now();
    for (const k of keys) {
      const updated = await this.deps.store.update<OffboardRecord>(NS, k, (cur) => (cur ? { ...cur, active: false, reinstatedAt: at, reinstatedBy: by } : cur));
      if (updated) any = true;
    }
    if (any) await this.deps.audit.append(auditEvent('offboard.reinstate', { actor: by, user: person.user, subjects: [...person.subjects] }));
    return any;
  }

  /** The record for `user` if offboarded now (or reinstated), for SCIM and the API. */
  async status(user: string): Promise<OffboardRecord | undefined> {
    return this.deps.store.get<OffboardRecord>(NS, user.includes('@') ? norm(user) : user);
  }
}

/**
 * The verifier every listener uses: a valid token of an offboarded person is refused like a bad
 * one, so the HTTP API, SSH and Postgres all stop at the first step.
 */
export function refusingVerifier(inner: IdentityVerifier, offboarding: Pick<OffboardingService, 'refusal'>): IdentityVerifier {
  return {
    async verify(token) {
      const identity = await inner.verify(token);
      let why: string | undefined;
      try {
        why = await offboarding.refusal(identity);
      } catch (err) {
        // A store outage stays a typed condition (503 / 57P03 / SSH "try again"), still a refusal.
        if (err instanceof StoreUnavailable) throw err;
        throw new TokenRejected('access could not be checked', { cause: err });
      }
      if (why) throw new IdentityRevoked(why);
      return identity;
    },
  };
}
