/**
 * What a Postgres client is told when its session is refused or ends on an error: an
 * ErrorResponse (FATAL) with SQLSTATE, then the connection closes.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
import type { SessionRefused } from '../session-lifecycle.js';

/** The client is told this error, then the connection closes. */
export class SessionFatal extends Error {
  constructor(public readonly sqlstate: string, message: string) {
    super(message);
    this.name = 'SessionFatal';
  }
}

/** A lifecycle refusal as the client sees it; `target` is the name the client asked for. */
export function fatalFor(refusal: SessionRefused, target: string): SessionFatal {
  switch (refusal.code) {
    case 'token':
      return new SessionFatal('28P01', `IAM token rejected: ${refusal.message}. Use a fresh token from your identity provider as the password`);
    case 'no-grant':
    case 'unknown-target':
    case 'unknown-login':
    case 'locked':
    case 'mfa':
    case 'offboarded':
      return new SessionFatal('28000', refusal.message);
    case 'credential':
      return new SessionFatal('08006', refusal.message);
    case 'upstream':
    case 'host-key-mismatch':
      return new SessionFatal('08006', `cannot connect to target "${target}": ${refusal.message}`);
    case 'unavailable':
      // 57P03 cannot_connect_now: what PostgreSQL says while it starts up; clients retry on it.
      return new SessionFatal('57P03', refusal.message);
    case 'login-timeout':
      return new SessionFatal('08006', refusal.message);
    case 'error':
    case 'recording':
    case 'gone':
      return new SessionFatal('XX000', refusal.message);
  }
}
