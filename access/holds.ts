import { randomBytes } from 'node:crypto';
import type { Identity } from './identity.types.js';
import type { Store } from './store.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { Role } from '../policies/roles.js';
import { approverRefusal } from './mfa-policy.js';
import { approvingRoles, capabilitiesOf, mayApprove, mayAudit } from './capabilities.js';
import { AccessError } from './access-service.js';
import { auditBy } from '../recorder/audit-events.js';

export type HoldStatus = 'pending' | 'approved' | 'denied' | 'expired';

/** A command or statement a `review` rule holds until an approver decides. */
export interface Hold {
  id: string;
  kind: 'command' | 'sql';
  protocol: 'ssh' | 'postgres';
  subject: string;
  user: string;
  roles: string[];
  target: string;
  login: string;
  text: string;
  rule?: string;
  message?: string;
  sessionId?: string;
  status: HoldStatus;
  createdAt: number;
  expiresAt: number;
  decidedBy?: string;
  decidedAt?: number;
  decisionReason?: string;
}

const NS = 'holds';
const DECIDED = 'hold-decided';
const ID = /^hold_[0-9a-f]{16}$/;
const KEEP_MS = 24 * 3600_000;

/**
 * Review holds: the broker creates one and waits; an approver decides through the API
 * (`pam approve-command ID`, the UI's inbox). The decision flips the status atomically and is
 * broadcast, so the waiting session (on any node) resumes at once; a poll is the fallback.
 */
export class HoldService {
  constructor(private readonly deps: { store: Store; audit: AuditLog; roles: () => Role[]; acrValues?: () => readonly string[]; now?: () => number }) {}

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async create(identity: Identity, input: Pick<Hold, 'kind' | 'protocol' | 'target' | 'login' | 'text' | 'rule' | 'message' | 'sessionId'>, timeoutMs: number): Promise<Hold> {
    const hold: Hold = {
      ...input,
      text: input.text.slice(0, 8192),
      id: `hold_${randomBytes(8).toString('hex')}`,
      subject: identity.subject,
      user: identity.user,
      roles: capabilitiesOf(identity, this.deps.roles()).roles,
      status: 'pending',
      createdAt: this.now,
      expiresAt: this.now + timeoutMs,
    };
    await this.deps.store.set(NS, hold.id, hold, { ttlMs: KEEP_MS });
    await this.deps.audit.append(auditBy(identity, 'policy.hold', { hold: hold.id, protocol: hold.protocol, target: hold.target, login: hold.login, rule: hold.rule, text: hold.text.slice(0, 2000) }));
    return hold;
  }

  /** Resolves with the final status: approved, denied, or expired when nobody decided in time. */
  async wait(id: string, signal?: AbortSignal): Promise<HoldStatus> {
    const hold = await this.deps.store.get<Hold>(NS, id);
    if (!hold) return 'expired';
    return new Promise<HoldStatus>((resolve) => {
      let done = false;
      let unsubscribe: (() => Promise<void>) | undefined;
      const finish = (status: HoldStatus) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        void unsubscribe?.();
        resolve(status);
      };
      const check = async () => {
        const cur = await this.deps.store.get<Hold>(NS, id).catch(() => undefined);
        if (!cur) return finish('expired');
        if (cur.status !== 'pending') finish(cur.status);
      };
      const timer = setTimeout(() => void this.expire(id).then(finish), Math.max(0, hold.expiresAt - this.now));
      const poll = setInterval(() => void check(), 1000);
      signal?.addEventListener('abort', () => void this.expire(id).then(finish), { once: true });
      void this.deps.store.subscribe(DECIDED, (m) => {
        if ((m as { id?: string })?.id === id) void check();
      }).then((u) => {
        unsubscribe = u;
        if (done) void u();
      });
      void check();
    });
  }

  private async expire(id: string): Promise<HoldStatus> {
    const after = await this.deps.store.update<Hold>(NS, id, (cur) => (cur && cur.status === 'pending' ? { ...cur, status: 'expired', decidedAt: this.now } : cur)).catch(() => undefined);
    return after?.status ?? 'expired';
  }

  canDecide(identity: Identity, hold: Hold): boolean {
    return mayApprove(identity, capabilitiesOf(identity, this.deps.roles()), hold) === 'yes';
  }

  async decide(identity: Identity, id: string, approve: boolean, reason?: string): Promise<Hold> {
    const cur = ID.test(id) ? await this.deps.store.get<Hold>(NS, id) : undefined;
    if (!cur) throw new AccessError(404, 'no such held command');
    const check = mayApprove(identity, capabilitiesOf(identity, this.deps.roles()), cur);
    if (check !== 'yes') {
      await this.deps.audit.append(auditBy(identity, 'policy.hold.refused', { hold: id, why: check === 'own' ? 'own command' : 'no approving role' }));
      throw new AccessError(403, check === 'own' ? 'nobody may approve their own command' : `none of your roles may approve for ${cur.roles.join(', ') || 'this user'}`);
    }
    // An approving role with require_mfa counts only for a multi-factor, recent sign-in.
    const approving = approvingRoles(identity, this.deps.roles(), cur);
    const stepUp = approverRefusal(identity, approving, { now: this.now, acrValues: this.deps.acrValues?.() ?? [], what: `${approve ? 'approving' : 'denying'} a held command on ${cur.login}@${cur.target}` });
    if (stepUp) {
      await this.deps.audit.append(auditBy(identity, 'policy.hold.refused', { hold: id, why: 'mfa required' }));
      throw new AccessError(403, stepUp);
    }
    const next = await this.deps.store.update<Hold>(NS, id, (h) => {
      if (!h) throw new AccessError(404, 'no such held command');
      if (h.status !== 'pending') throw new AccessError(409, `held command is already ${h.status}`);
      if (h.expiresAt <= this.now) throw new AccessError(409, 'held command timed out');
      return { ...h, status: approve ? 'approved' : 'denied', decidedBy: identity.user, decidedAt: this.now, decisionReason: reason?.slice(0, 1000) };
    });
    await this.deps.audit.append(auditBy(identity, approve ? 'policy.hold.approve' : 'policy.hold.deny', { hold: id, user: cur.user, target: cur.target, reason }));
    await this.deps.store.publish(DECIDED, { id });
    return next!;
  }

  async list(identity: Identity): Promise<Hold[]> {
    const caps = capabilitiesOf(identity, this.deps.roles());
    const all = await this.deps.store.list<Hold>(NS);
    return all.filter((h) => mayAudit(caps) || h.subject === identity.subject || mayApprove(identity, caps, h) === 'yes').sort((a, b) => b.createdAt - a.createdAt);
  }
}
