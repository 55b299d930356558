/**
 * Label values for metrics, each from a closed set. Audit fields such as `why`, `reason` and
 * `target` can carry what a user typed (an unknown target name, a kill reason), so no metric
 * label is ever copied from them: they are mapped here onto fixed words, anything else "other".
 */

export const PROTOCOLS = ['ssh', 'postgres'] as const;

export function protocolLabel(v: unknown): string {
  return v === 'ssh' || v === 'postgres' ? v : 'other';
}

/** A configured target name, or "unknown" for a name only the client made up. */
export function targetLabel(v: unknown, known: () => readonly string[]): string {
  return typeof v === 'string' && known().includes(v) ? v : 'unknown';
}

/** TokenRejected reasons (access/identity.ts) are fixed phrases: snake_cased, or "other". */
const TOKEN_REASONS = new Set([
  'malformed token', 'token too large', 'algorithm not allowed', 'missing subject', 'missing expiry', 'identity provider unreachable',
  'expired', 'missing issuer', 'wrong issuer', 'missing audience', 'wrong audience', 'not yet valid', 'invalid expiry', 'invalid claims',
  'unknown signing key', 'bad signature', 'unsupported token', 'invalid token', 'token could not be verified', 'check failed', 'nonce mismatch',
]);

export function tokenReasonLabel(reason: unknown): string {
  const r = typeof reason === 'string' ? reason.replace(/^token rejected: /, '') : '';
  return TOKEN_REASONS.has(r) ? r.replace(/ /g, '_') : 'other';
}

/** Why a session was refused or failed, from the audit entry's `why`. */
export function refusalLabel(why: unknown): string {
  const w = typeof why === 'string' ? why : '';
  if (w.startsWith('token rejected') || w === 'token could not be verified') return 'token';
  if (w.startsWith('no active grant')) return 'no_grant';
  if (w.startsWith('unknown ') && w.includes('target')) return 'unknown_target';
  if (/has no login/.test(w)) return 'unknown_login';
  if (w.startsWith('credential unavailable')) return 'credential';
  if (/host key/i.test(w)) return 'host_key';
  if (w === 'authorization failed' || /store/i.test(w)) return 'authorization';
  if (/unreachable|upstream|refused|timed? ?out|ECONN|EHOST/i.test(w)) return 'upstream';
  if (/tls|plaintext|ssl/i.test(w)) return 'transport';
  return 'other';
}

/** How a session ended, from the `session.end` reason. */
export function outcomeLabel(reason: unknown): string {
  const r = typeof reason === 'string' ? reason : '';
  if (/^client (disconnected|terminated)/.test(r) || r === 'target closed the connection') return 'normal';
  if (r.startsWith('access revoked')) return 'revoked';
  if (r === 'access grant expired') return 'expired';
  if (r.startsWith('session terminated by')) return 'killed';
  if (r.startsWith('proxy shutting down')) return 'shutdown';
  if (r.startsWith('recording failed')) return 'recording_failed';
  if (/error/.test(r)) return 'error';
  return 'other';
}

/** Policy verdict actions. */
export function actionLabel(v: unknown): string {
  return v === 'allow' || v === 'deny' || v === 'review' || v === 'alert' ? v : 'other';
}
