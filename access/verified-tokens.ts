import { createHash } from 'node:crypto';
import type { Identity, IdentityVerifier } from './identity.types.js';

/**
 * Tokens that verified recently, by SHA-256 of the token: a client that connects once per
 * statement (pgbench -C, a web app without a pool) presents the same token for every
 * connection, and the signature check was the dearest step of a Postgres session open after
 * the upstream login.
 *
 * A hit is honoured only while the token has not expired (its `exp`, without the clock skew a
 * first verification allows) and for at most `ttlMs` after its verification (60 s by default):
 * an issuer's withdrawn key stops working within that bound, well inside the 10 minutes after
 * which the JWKS itself is refetched (identity.ts). Refusals are never cached, and checks that
 * change meanwhile (offboarding, grants, MFA age) run at every open outside this cache.
 * The map holds digests, not tokens, and at most `max` entries (oldest dropped first).
 */
export interface VerifiedTokenOptions {
  ttlMs?: number;
  max?: number;
  now?: () => number;
}

export const VERIFIED_TOKEN_TTL_MS = 60_000;
const DEFAULT_MAX = 4096;

export function cachingVerifier(inner: IdentityVerifier, opts: VerifiedTokenOptions = {}): IdentityVerifier {
  const ttlMs = opts.ttlMs ?? VERIFIED_TOKEN_TTL_MS;
  const max = opts.max ?? DEFAULT_MAX;
  const now = opts.now ?? Date.now;
  const hits = new Map<string, { identity: Identity; until: number }>();
  return {
    ...inner,
    async verify(token) {
      if (typeof token !== 'string') return inner.verify(token);
      const key = createHash('sha256').update(token).digest('base64');
      const t = now();
      const hit = hits.get(key);
      if (hit && t < hit.until) return structuredClone(hit.identity);
      if (hit) hits.delete(key);
      const identity = await inner.verify(token);
      const until = Math.min(identity.expiresAt, now() + ttlMs);
      if (until > now()) {
        if (hits.size >= max) hits.delete(hits.keys().next().value!);
        hits.set(key, { identity: structuredClone(identity), until });
      }
      return identity;
    },
  };
}
