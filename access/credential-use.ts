import type { Store } from './store.types.js';
import type { Authorized } from './access.types.js';

const NS = 'credential-use';
/** Records outlive the longest configurable look-back a little. */
const KEEP_MS = 120 * 86_400_000;

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
  constructor(private readonly store: Store, private readonly now: () => number = Date.now) {}

  async record(auth: Authorized): Promise<void> {
    const secret = auth.target.logins[auth.login]?.secret;
    if (!secret) return;
    const { identity } = auth;
    const use: CredentialUse = {
      subject: identity.subject, user: identity.user, ...(identity.email ? { email: identity.email } : {}),
      target: auth.target.name, login: auth.login, secret, at: this.now(),
    };
    await this.store.set(NS, `${identity.subject}\u0000${use.target}\u0000${use.login}`, use, { ttlMs: KEEP_MS });
  }

  /** Uses newer than `sinceMs` by anyone `match` accepts. */
  async since(sinceMs: number, match: (u: CredentialUse) => boolean): Promise<CredentialUse[]> {
    return (await this.store.list<CredentialUse>(NS)).filter((u) => u.at >= sinceMs && match(u));
  }
}
