import type { Store } from './store.types.js';
import type { Authorized } from './access.types.js';

const NS = 'credential-use';
/** Records outlive the longest configurable look-back a little. */
const KEEP_MS = 120 * 86_400_000;
/**
 * A record this process wrote less than this long ago is not written again: offboarding looks
 * back days (offboarding.rotate_used_within, 30 days by default), so a minute of precision costs
 * nothing, while a durable store write (fsync of the namespace file and its folder) at every
 * session open was the largest part of opening a Postgres session.
 */
export const USE_REFRESH_MS = 60_000;
const MAX_REMEMBERED = 10_000;

/** Who last opened a session with which vaulted credential, kept in the store for every node. */
export interface CredentialUse {
  subject: string;
  user: string;
  email?: string;
  target: string;
  login: string;
  secret: string;
  /** Last session open, ms since epoch. */
  at: number;
}

/**
 * Which credentials a person used: one record per (subject, target, login), refreshed at every
 * authorized session open, so offboarding knows what to rotate on any node.
 */
export class CredentialUseLog {
  /** key → when this process last wrote it, and for which secret (insertion order = age). */
  private readonly written = new Map<string, { at: number; secret: string; user: string }>();

  constructor(private readonly store: Store, private readonly now: () => number = Date.now) {}

  async record(auth: Authorized): Promise<void> {
    const secret = auth.target.logins[auth.login]?.secret;
    if (!secret) return;
    const { identity } = auth;
    const key = `${identity.subject}\u0000${auth.target.name}\u0000${auth.login}`;
    const at = this.now();
    const last = this.written.get(key);
    if (last && last.secret === secret && last.user === identity.user && at - last.at < USE_REFRESH_MS) return;
    const use: CredentialUse = {
      subject: identity.subject, user: identity.user, ...(identity.email ? { email: identity.email } : {}),
      target: auth.target.name, login: auth.login, secret, at,
    };
    await this.store.set(NS, key, use, { ttlMs: KEEP_MS });
    this.written.delete(key);
    this.written.set(key, { at, secret, user: identity.user });
    if (this.written.size > MAX_REMEMBERED) this.written.delete(this.written.keys().next().value!);
  }

  /** Uses newer than `sinceMs` by anyone `match` accepts. */
  async since(sinceMs: number, match: (u: CredentialUse) => boolean): Promise<CredentialUse[]> {
    return (await this.store.list<CredentialUse>(NS)).filter((u) => u.at >= sinceMs && match(u));
  }
}
