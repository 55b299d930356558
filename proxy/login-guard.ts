/**
 * Limits before login, one implementation for both brokers (issue 12; the lifecycle's
 * "login deadline"). A connection is admitted with a ticket when it arrives and keeps it until
 * the session is opened (or refused, or the client leaves):
 *
 * - `login_timeout`: a connection still holding its ticket after this long is ended by the
 *   broker's `onTimeout` (like PostgreSQL's authentication_timeout, OpenSSH's LoginGraceTime).
 * - `max_unauthenticated_per_source`: at most this many tickets per client address at once;
 *   one more is refused on arrival, so one source cannot pin the proxy's memory or sockets.
 * - pre-auth bytes: a connection may send at most `maxBytes` (given per broker) before it has
 *   logged in, counted as read from its socket; past that `onOver` ends it. For SSH this is the
 *   bound that ssh2's own packet limit (~35 KB a packet, any number of packets) does not give.
 *
 * Message size is also the broker's part (the Postgres framer's cap, the SSH token check); both
 * are bounded by what a token needs. The limits are read at each admission, so a SIGHUP that
 * changes them applies to the next connection (app/reload.ts); a waiting one keeps its own.
 */
import type { Socket } from 'node:net';
import type { LoginLimits } from '../config/config.types.js';
import { DEFAULT_LOGIN_TIMEOUT_MS, DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE } from '../config/login-config.js';
import { MAX_TOKEN_BYTES } from '../access/identity.js';
import { auditEvent } from '../recorder/audit-events.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { RejectionAudit } from '../access/rejection-audit.js';

/** Largest message a client may send before it has logged in: a token and some framing. */
export const MAX_PREAUTH_MESSAGE_BYTES = MAX_TOKEN_BYTES + 1024;

/**
 * Most bytes an SSH client may send before it has logged in: the version line and key exchange
 * (about 4 KiB with a post-quantum hybrid), a handful of public-key offers (under 1 KiB each)
 * and two answers carrying a token of the largest size (16 KiB), encrypted and framed. A real
 * client with a real token sends a tenth of it.
 */
export const MAX_PREAUTH_SSH_BYTES = 3 * MAX_TOKEN_BYTES;

export interface LoginTicket {
  /** Logged in (or refused): stops the deadline and frees the source's slot. Idempotent. */
  done(): void;
}

/** Counting of bytes read before login (see `admit`). */
export interface PreauthMeter {
  socket: Socket;
  maxBytes: number;
  /** Called once, with the count, when the connection has sent more than maxBytes. */
  onOver(bytes: number): void;
}

export class LoginGuard {
  private readonly perSource = new Map<string, number>();
  private readonly limits: () => LoginLimits | undefined;

  /** `limits` as a function: read at every admission (the control plane gives `() => config.login`). */
  constructor(limits: LoginLimits | undefined | (() => LoginLimits | undefined)) {
    this.limits = typeof limits === 'function' ? limits : () => limits;
  }

  /** The login_timeout a connection admitted now gets. */
  get timeoutMs(): number {
    return this.limits()?.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
  }

  private get maxPerSource(): number {
    return this.limits()?.maxUnauthenticatedPerSource ?? DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE;
  }

  /** Connections from `source` that have not logged in yet. */
  pending(source: string): number {
    return this.perSource.get(source) ?? 0;
  }

  /**
   * A ticket for a new connection from `source` (an IP address, without the port), or
   * undefined when that source already has the most unauthenticated connections allowed.
   * `onTimeout` gets this connection's login_timeout in seconds; with `meter`, the bytes read
   * from its socket are counted until the ticket is done.
   */
  admit(source: string, onTimeout: (seconds: number) => void, meter?: PreauthMeter): LoginTicket | undefined {
    const n = this.pending(source);
    if (n >= this.maxPerSource) return undefined;
    this.perSource.set(source, n + 1);
    const timeoutMs = this.timeoutMs;
    let open = true;
    const timer = setTimeout(() => {
      if (!open) return;
      ticket.done();
      onTimeout(timeoutMs / 1000);
    }, timeoutMs);
    timer.unref();
    let read = 0;
    const count = (chunk: Buffer) => {
      read += chunk.length;
      if (read <= meter!.maxBytes || !open) return;
      ticket.done();
      meter!.onOver(read);
    };
    meter?.socket.on('data', count);
    const ticket: LoginTicket = {
      done: () => {
        if (!open) return;
        open = false;
        clearTimeout(timer);
        meter?.socket.off('data', count);
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

/** Audits a login_timeout refusal: through `rejections` (rate-limited per source) when there is one. */
export function auditLoginTimeout(deps: { audit: AuditLog; rejections?: RejectionAudit }, protocol: 'ssh' | 'postgres', client: string, source: string): void {
  const event = auditEvent('session.refused', { protocol, why: 'login timeout', code: 'login-timeout', client });
  void (deps.rejections ? deps.rejections.rejected({ ...event, via: protocol, reason: 'login timeout' }, source) : deps.audit.append(event)).catch(() => undefined);
}
