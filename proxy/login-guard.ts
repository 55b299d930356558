/**
 * Limits before login, one implementation for both brokers (issue 12; the lifecycle's
 * "login deadline"). A connection is admitted with a ticket when it arrives and keeps it until
 * the session is opened (or refused, or the client leaves):
 *
 * - `login_timeout`: a connection still holding its ticket after this long is ended by the
 *   broker's `onTimeout` (like PostgreSQL's authentication_timeout, OpenSSH's LoginGraceTime).
 * - `max_unauthenticated_per_source`: at most this many tickets per client address at once;
 *   one more is refused on arrival, so one source cannot pin the proxy's memory or sockets.
 *
 * Pre-auth message size is the broker's part (the Postgres framer's cap, ssh2's packet cap);
 * both are bounded by what a token needs.
 */
import type { LoginLimits } from '../config/config.types.js';
import { DEFAULT_LOGIN_TIMEOUT_MS, DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE } from '../config/login-config.js';
import { MAX_TOKEN_BYTES } from '../access/identity.js';

/** Largest message a client may send before it has logged in: a token and some framing. */
export const MAX_PREAUTH_MESSAGE_BYTES = MAX_TOKEN_BYTES + 1024;

export interface LoginTicket {
  /** Logged in (or refused): stops the deadline and frees the source's slot. Idempotent. */
  done(): void;
}

export class LoginGuard {
  private readonly perSource = new Map<string, number>();
  readonly timeoutMs: number;
  private readonly maxPerSource: number;

  constructor(limits: LoginLimits | undefined) {
    this.timeoutMs = limits?.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
    this.maxPerSource = limits?.maxUnauthenticatedPerSource ?? DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE;
  }

  /** Connections from `source` that have not logged in yet. */
  pending(source: string): number {
    return this.perSource.get(source) ?? 0;
  }

  /**
   * A ticket for a new connection from `source` (an IP address, without the port), or
   * undefined when that source already has the most unauthenticated connections allowed.
   */
  admit(source: string, onTimeout: () => void): LoginTicket | undefined {
    const n = this.pending(source);
    if (n >= this.maxPerSource) return undefined;
    this.perSource.set(source, n + 1);
    let open = true;
    const timer = setTimeout(() => {
      if (!open) return;
      ticket.done();
      onTimeout();
    }, this.timeoutMs);
    timer.unref();
    const ticket: LoginTicket = {
      done: () => {
        if (!open) return;
        open = false;
        clearTimeout(timer);
        const left = this.pending(source) - 1;
        if (left <= 0) this.perSource.delete(source);
        else this.perSource.set(source, left);
      },
    };
    return ticket;
  }
}

/** `::ffff:127.0.0.1` and `127.0.0.1` are one source. */
export function sourceOf(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
