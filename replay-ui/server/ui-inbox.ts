import type { Identity } from '../../access/identity.types.js';
import type { AccessRequest, Grant } from '../../access/access.types.js';
import type { Hold } from '../../access/holds.js';
import { capabilitiesOf, mayApprove, mayViewContext, type Capabilities } from '../../access/capabilities.js';
import type { HttpDeps } from './http.types.js';
import { requireCapability } from './route-capability.js';
import type { Route } from './router.js';

/** Decided items kept in the history list, newest first. */
const HISTORY = 50;
const RECENT_SESSIONS = 5;
const RECENT_COMMANDS = 10;

/** What an approver needs beside a pending item to decide it at 3 a.m. */
interface Context {
  /** The requester's active grants now. */
  grants: { id: string; target: string; login: string; expires_at: string; approved_by: string }[];
  /** The requester's latest sessions (from the index; empty without one). */
  sessions: { id: string; protocol: string; target: string; login: string; start: string; end: string | null; status: string; end_reason: string | null }[];
}

/**
 * The approvers' inbox: `GET /api/v1/inbox` (pending requests and held commands with the
 * requester's context, how long each has waited, the session a hold waits in, and the decided
 * history) and `GET /api/v1/inbox/count` (what the navigation badge shows). Who may see what
 * is decided in access/capabilities.ts.
 */
export function uiInboxRoutes(cp: HttpDeps): Route[] {
  const grantsOf = (all: Grant[], subject: string): Context['grants'] => all.filter((g) => g.subject === subject)
    .map((g) => ({ id: g.id, target: g.target, login: g.login, expires_at: new Date(g.expiresAt).toISOString(), approved_by: g.approvedBy }));

  const sessionsOf = async (user: string, subject: string): Promise<Context['sessions']> => {
    if (!cp.index) return [];
    try {
      const page = await cp.index.sessions({ user, limit: 40 });
      return page.sessions.filter((s) => s.subject === subject).slice(0, RECENT_SESSIONS)
        .map((s) => ({ id: s.id, protocol: s.protocol, target: s.target, login: s.login, start: s.start, end: s.end ?? null, status: s.status, end_reason: s.endReason ?? null }));
    } catch {
      return [];
    }
  };

  /** The session's latest commands (shell lines, exec requests, statements), oldest first. */
  const commandsOf = async (sessionId: string) => {
    if (!cp.index) return null;
    try {
      const page = await cp.index.search({ recording: sessionId, limit: RECENT_COMMANDS });
      return page.hits.filter((h) => h.command).map((h) => ({ time: h.time, t: h.t, text: h.command!.text, verdict: h.command!.verdict })).reverse();
    } catch {
      return null;
    }
  };

  const pending = async (identity: Identity, caps: Capabilities) => {
    const [requests, holds] = await Promise.all([cp.access.listRequests(identity), cp.holds.list(identity)]);
    return { requests, holds, mine: (x: AccessRequest | Hold) => mayApprove(identity, caps, x) === 'yes' };
  };

  const count = (requests: AccessRequest[], holds: Hold[], mine: (x: AccessRequest | Hold) => boolean, now: number) =>
    requests.filter((r) => r.status === 'pending' && mine(r)).length + holds.filter((h) => h.status === 'pending' && h.expiresAt > now && mine(h)).length;

  return [
    {
      method: 'GET', path: '/api/v1/inbox',
      handler: async ({ identity }) => {
        requireCapability(cp, identity, 'inbox');
        const caps = capabilitiesOf(identity, cp.roles());
        const now = Date.now();
        const { requests, holds, mine } = await pending(identity, caps);
        const allGrants = await cp.access.listGrants(identity);
        const context = async (x: AccessRequest | Hold): Promise<Context | null> => (mayViewContext(identity, caps, x)
          ? { grants: grantsOf(allGrants, x.subject), sessions: await sessionsOf(x.user, x.subject) } : null);
        const openRequests = await Promise.all(requests.filter((r) => r.status === 'pending').map(async (r) => ({
          id: r.id, user: r.user, roles: r.roles, target: r.target, login: r.login, reason: r.reason,
          duration_ms: r.durationMs, created_at: new Date(r.createdAt).toISOString(), waited_ms: Math.max(0, now - r.createdAt),
          can_decide: mine(r), own: r.subject === identity.subject, context: await context(r),
        })));
        const openHolds = await Promise.all(holds.filter((h) => h.status === 'pending' && h.expiresAt > now).map(async (h) => {
          const ctx = await context(h);
          const live = h.sessionId ? cp.sessions.get(h.sessionId) : undefined;
          return {
            id: h.id, kind: h.kind, protocol: h.protocol, user: h.user, roles: h.roles, target: h.target, login: h.login, text: h.text,
            rule: h.rule ?? null, message: h.message ?? null, created_at: new Date(h.createdAt).toISOString(), expires_at: new Date(h.expiresAt).toISOString(),
            waited_ms: Math.max(0, now - h.createdAt), can_decide: mine(h), own: h.subject === identity.subject,
            session: h.sessionId ? { id: h.sessionId, live: !!live, started_at: live?.startedAt ?? null, client_address: ctx ? live?.clientAddress ?? null : null } : null,
            context: ctx ? { ...ctx, recent_commands: h.sessionId ? await commandsOf(h.sessionId) : null } : null,
          };
        }));
        const history = [
          ...requests.filter((r) => r.status !== 'pending').map((r) => ({
            kind: 'request' as const, id: r.id, user: r.user, target: r.target, login: r.login, what: r.reason, outcome: r.status,
            asked_ms: r.durationMs, granted_ms: r.status === 'approved' ? r.approvedDurationMs ?? r.durationMs : null,
            decided_by: r.decidedBy ?? null, decided_at: new Date(r.decidedAt ?? r.createdAt).toISOString(), reason: r.decisionReason ?? null,
          })),
          ...holds.filter((h) => h.status !== 'pending' || h.expiresAt <= now).map((h) => ({
            kind: 'hold' as const, id: h.id, user: h.user, target: h.target, login: h.login, what: h.text, outcome: h.status === 'pending' ? 'expired' : h.status,
            session: h.sessionId ?? null, decided_by: h.decidedBy ?? null, decided_at: new Date(h.decidedAt ?? Math.min(now, h.expiresAt)).toISOString(), reason: h.decisionReason ?? null,
          })),
        ].sort((a, b) => b.decided_at.localeCompare(a.decided_at)).slice(0, HISTORY);
        return { now: new Date(now).toISOString(), pending: count(requests, holds, mine, now), requests: openRequests, holds: openHolds, history };
      },
    },
    {
      method: 'GET', path: '/api/v1/inbox/count',
      handler: async ({ identity }) => {
        requireCapability(cp, identity, 'inbox');
        const { requests, holds, mine } = await pending(identity, capabilitiesOf(identity, cp.roles()));
        return { pending: count(requests, holds, mine, Date.now()) };
      },
    },
  ];
}
