/**
 * Limits before login (issue 12), both brokers: `login_timeout` (default 30 s, like
 * PostgreSQL's authentication_timeout and OpenSSH's LoginGraceTime) and
 * `max_unauthenticated_per_source` (default 16): concurrent connections from one client
 * address that have not logged in yet.
 */
import { parseDuration } from './duration.js';

export const LOGIN_KEYS = ['login_timeout', 'max_unauthenticated_per_source'];
export const DEFAULT_LOGIN_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE = 16;

export interface LoginLimits {
  loginTimeoutMs: number;
  maxUnauthenticatedPerSource: number;
}

export class LoginConfigError extends Error {
  constructor(public readonly key: string, public readonly why: string) {
    super(`${key}: ${why}`);
  }
}

export function parseLoginLimits(doc: Record<string, unknown>): LoginLimits {
  let loginTimeoutMs = DEFAULT_LOGIN_TIMEOUT_MS;
  const t = doc.login_timeout;
  if (t !== undefined && t !== null) {
    if (typeof t !== 'string') throw new LoginConfigError('login_timeout', 'must be a duration like 30s');
    try {
      loginTimeoutMs = parseDuration(t);
    } catch (e) {
      throw new LoginConfigError('login_timeout', (e as Error).message);
    }
    if (loginTimeoutMs < 1000 || loginTimeoutMs > 600_000) throw new LoginConfigError('login_timeout', 'must be between 1s and 10m');
  }
  const m = doc.max_unauthenticated_per_source ?? DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE;
  if (typeof m !== 'number' || !Number.isInteger(m) || m < 1 || m > 100_000) {
    throw new LoginConfigError('max_unauthenticated_per_source', 'must be a whole number from 1 to 100000');
  }
  return { loginTimeoutMs, maxUnauthenticatedPerSource: m };
}
