/**
 * IAM token checks: OIDC JWTs verified against the issuer's JWKS.
 *
 * Fails closed: any doubt (bad signature, unknown key, unreachable issuer, odd claims) is a
 * TokenRejected whose `reason` is a short fixed phrase; the token itself never appears in it.
 * Details for operators travel in `cause`.
 *
 * Specs: OIDC Discovery 1.0 §4 (https://openid.net/specs/openid-connect-discovery-1_0.html),
 * JWT (RFC 7519), JWKS (RFC 7517 §5).
 */
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { TokenRejected, type Identity, type IdentityVerifier } from './identity.types.js';
import { cachingVerifier } from './verified-tokens.js';

/** Signature algorithms we accept. Never `none`, never HMAC (a public key must not double as a secret). */
export const ALLOWED_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
/** Tokens larger than this are refused before any parsing. */
export const MAX_TOKEN_BYTES = 16 * 1024;
/** Tolerated clock difference between us and the issuer, seconds. */
export const CLOCK_SKEW_SEC = 60;

const MAX_METADATA_BYTES = 1024 * 1024;
const DEFAULT_FETCH_TIMEOUT_MS = 5_000;
const DEFAULT_REFETCH_COOLDOWN_MS = 30_000;
/** Keys older than this are refetched before use, so keys the issuer withdrew stop working. */
const DEFAULT_KEYS_MAX_AGE_MS = 10 * 60_000;
const DEFAULT_RETRY_BASE_MS = 1_000;
const DEFAULT_RETRY_MAX_MS = 60_000;

export interface OidcVerifierOptions {
  /** Issuer URL; must equal the `issuer` in its discovery document and the `iss` of tokens. */
  issuer: string;
  /** Expected `aud`. */
  audience: string;
  /** Claim holding the groups: an array of strings or one string. A dotted path ("realm_access.roles") is followed when no claim has that exact name. */
  groupsClaim: string;
  /** Per request timeout for discovery and JWKS, default 5 s. */
  fetchTimeoutMs?: number;
  /**
   * Minimum time between JWKS fetches triggered by an unknown `kid`, default 30 s. This is the
   * rate limit that keeps tokens with made-up key ids from hammering the issuer.
   */
  refetchCooldownMs?: number;
  /** Refetch the JWKS before use when the cached copy is older than this, default 10 min. */
  keysMaxAgeMs?: number;
  /**
   * While discovery or the JWKS fails, no new fetch before this back-off has passed: 1 s after
   * the first failure, doubling per failure up to `retryMaxMs` (default 60 s). Tokens that
   * need a fetch meanwhile are refused at once as "identity provider unreachable".
   */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Clock, ms since epoch. Injected by tests; defaults to Date.now. */
  now?: () => number;
}

/** What the claim check needs besides the key lookup. Shared by the OIDC and the dev verifier. */
export interface ClaimRules {
  issuer: string;
  audience: string;
  groupsClaim: string;
  now?: () => number;
}

/** The issuer or its JWKS could not be used; always surfaces as "identity provider unreachable". */
class ProviderUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProviderUnavailable';
  }
}

/**
 * Verifies `token` with keys from `getKey` and turns its claims into an Identity.
 * The one place where token checks live: both verifiers call it.
 */
export async function verifyToken(token: string, getKey: JWTVerifyGetKey, rules: ClaimRules): Promise<Identity> {
  if (typeof token !== 'string' || token.length === 0) throw new TokenRejected('malformed token');
  if (token.length > MAX_TOKEN_BYTES || Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES) {
    throw new TokenRejected('token too large');
  }
  // Cheap header checks first, so garbage and forbidden algorithms never cost a JWKS fetch.
  if (token.split('.').length !== 3) throw new TokenRejected('malformed token');
  let alg: unknown;
  try {
    ({ alg } = decodeProtectedHeader(token));
  } catch (err) {
    throw new TokenRejected('malformed token', { cause: err });
  }
  if (typeof alg !== 'string' || !(ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new TokenRejected('algorithm not allowed');
  }

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, getKey, {
      issuer: rules.issuer,
      audience: rules.audience,
      algorithms: [...ALLOWED_ALGORITHMS],
      clockTolerance: CLOCK_SKEW_SEC,
      requiredClaims: ['exp', 'sub'],
      currentDate: rules.now ? new Date(rules.now()) : undefined,
    }));
  } catch (err) {
    throw toRejection(err);
  }
  return toIdentity(payload, rules);
}

function toIdentity(payload: JWTPayload, rules: ClaimRules): Identity {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub === '') throw new TokenRejected('missing subject');
  if (typeof payload.exp !== 'number') throw new TokenRejected('missing expiry');
  const email = typeof payload.email === 'string' && payload.email !== '' ? payload.email : undefined;
  const preferred = typeof payload.preferred_username === 'string' && payload.preferred_username !== ''
    ? payload.preferred_username
    : undefined;
  const identity: Identity = {
    subject: sub,
    user: preferred ?? email ?? sub,
    groups: readGroups(payload, rules.groupsClaim),
    issuer: rules.issuer,
    expiresAt: payload.exp * 1000,
  };
  if (email !== undefined) identity.email = email;
  if (isStringArray(payload.amr)) identity.amr = [...payload.amr];
  if (typeof payload.acr === 'string') identity.acr = payload.acr;
  if (typeof payload.auth_time === 'number' && Number.isFinite(payload.auth_time)) identity.authTime = payload.auth_time * 1000;
  if (typeof payload.iat === 'number' && Number.isFinite(payload.iat)) identity.issuedAt = payload.iat * 1000;
  return identity;
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Groups from `claim`: a string array, or one string; anything else is no groups at all. */
export function readGroups(payload: JWTPayload, claim: string): string[] {
  let value: unknown = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
  if (value === undefined && claim.includes('.')) {
    value = claim.split('.').reduce<unknown>(
      (obj, key) => (typeof obj === 'object' && obj !== null && !Array.isArray(obj) && Object.hasOwn(obj, key)
        ? (obj as Record<string, unknown>)[key]
        : undefined),
      payload,
    );
  }
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (isStringArray(value)) return [...value];
  return [];
}

/** Maps any failure during verification to a fixed, safe reason. */
function toRejection(err: unknown): TokenRejected {
  if (err instanceof TokenRejected) return err;
  const cause = { cause: err };
  if (err instanceof ProviderUnavailable) return new TokenRejected('identity provider unreachable', cause);
  if (err instanceof joseErrors.JWTExpired) return new TokenRejected('expired', cause);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const missing = err.reason === 'missing';
    switch (err.claim) {
      case 'iss': return new TokenRejected(missing ? 'missing issuer' : 'wrong issuer', cause);
      case 'aud': return new TokenRejected(missing ? 'missing audience' : 'wrong audience', cause);
      case 'nbf': return new TokenRejected('not yet valid', cause);
      case 'exp': return new TokenRejected(missing ? 'missing expiry' : 'invalid expiry', cause);
      case 'sub': return new TokenRejected('missing subject', cause);
      default: return new TokenRejected('invalid claims', cause);
    }
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new TokenRejected('algorithm not allowed', cause);
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new TokenRejected('unknown signing key', cause);
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return new TokenRejected('bad signature', cause);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenRejected('bad signature', cause);
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return new TokenRejected('malformed token', cause);
  if (err instanceof joseErrors.JOSENotSupported) return new TokenRejected('unsupported token', cause);
  return new TokenRejected('invalid token', cause);
}

/** GET a small JSON document; non-200, redirects, oversize bodies and timeouts all throw. */
async function fetchJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, {
    redirect: 'error',
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`GET ${url}: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_METADATA_BYTES) {
    await res.body?.cancel();
    throw new Error(`GET ${url}: body too large`);
  }
  const body = await res.arrayBuffer();
  if (body.byteLength > MAX_METADATA_BYTES) throw new Error(`GET ${url}: body too large`);
  return JSON.parse(new TextDecoder().decode(body));
}

/** Discovery document location for an issuer (OIDC Discovery §4). */
export const discoveryUrl = (issuer: string) => `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;

/**
 * The issuer's signing keys. Fetched on first use; refetched when stale, or when a token names
 * an unknown `kid` and the last attempt (successful or not) is older than the cooldown.
 * Concurrent fetches are merged into one.
 */
class RemoteKeys {
  private local: ReturnType<typeof createLocalJWKSet> | undefined;
  private fetchedAt = -Infinity;
  private attemptedAt = -Infinity;
  private inflight: Promise<void> | undefined;

  constructor(
    private readonly loadUrl: () => Promise<string>,
    private readonly opts: { timeoutMs: number; cooldownMs: number; maxAgeMs: number; now: () => number },
    private readonly backoff: Backoff,
  ) {}

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.local || this.opts.now() - this.fetchedAt >= this.opts.maxAgeMs) await this.refresh();
    try {
      return await this.local!(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      if (this.opts.now() - this.attemptedAt < this.opts.cooldownMs) throw err;
      await this.refresh();
      return this.local!(header, token);
    }
  };

  /** Loads the keys if there are none or they are stale; rejects when the issuer is unreachable. */
  async ensure(): Promise<void> {
    if (!this.local || this.opts.now() - this.fetchedAt >= this.opts.maxAgeMs) await this.refresh();
  }

  private refresh(): Promise<void> {
    this.inflight ??= this.load().finally(() => { this.inflight = undefined; });
    return this.inflight;
  }

  private async load(): Promise<void> {
    const url = await this.loadUrl();
    this.backoff.check('JWKS');
    this.attemptedAt = this.opts.now();
    let next: ReturnType<typeof createLocalJWKSet>;
    try {
      next = createLocalJWKSet((await fetchJson(url, this.opts.timeoutMs)) as Parameters<typeof createLocalJWKSet>[0]);
    } catch (err) {
      this.backoff.failed();
      throw new ProviderUnavailable('JWKS fetch failed', { cause: err });
    }
    this.backoff.succeeded();
    this.local = next;
    this.fetchedAt = this.opts.now();
  }
}

/**
 * Exponential back-off for calls to an issuer that fails: after n failures in a row, no
 * attempt for min(base * 2^(n-1), max). One per remote resource (discovery, JWKS).
 */
export class Backoff {
  private failures = 0;
  private notBefore = -Infinity;

  constructor(private readonly baseMs: number, private readonly maxMs: number, private readonly now: () => number) {}

  /** Throws ProviderUnavailable while backing off, without any network call. */
  check(what: string): void {
    if (this.now() < this.notBefore) throw new ProviderUnavailable(`${what}: backing off after ${this.failures} failure(s)`);
  }

  failed(): void {
    this.failures++;
    this.notBefore = this.now() + Math.min(this.baseMs * 2 ** (this.failures - 1), this.maxMs);
  }

  succeeded(): void {
    this.failures = 0;
    this.notBefore = -Infinity;
  }
}

/**
 * Verifier for an OIDC issuer. Discovery is fetched once and cached; a failed discovery is
 * retried on the next verify. An unreachable issuer or JWKS rejects with
 * "identity provider unreachable" (fail closed).
 */
export function createOidcVerifier(opts: OidcVerifierOptions): IdentityVerifier {
  const timeoutMs = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const now = opts.now ?? Date.now;
  let jwksUri: Promise<string> | undefined;

  const retryBase = opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
  const retryMax = opts.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
  const discoveryBackoff = new Backoff(retryBase, retryMax, now);
  const discover = async (): Promise<string> => {
    discoveryBackoff.check('discovery');
    let doc: unknown;
    try {
      doc = await fetchJson(discoveryUrl(opts.issuer), timeoutMs);
    } catch (err) {
      discoveryBackoff.failed();
      throw new ProviderUnavailable('discovery failed', { cause: err });
    }
    discoveryBackoff.succeeded();
    const meta = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
    // OIDC Discovery §4.3: the issuer in the document must be exactly the one we asked.
    if (meta.issuer !== opts.issuer) throw new ProviderUnavailable(`discovery: issuer is ${JSON.stringify(meta.issuer)}, expected ${JSON.stringify(opts.issuer)}`);
    if (typeof meta.jwks_uri !== 'string' || !/^https?:\/\//.test(meta.jwks_uri)) throw new ProviderUnavailable('discovery: jwks_uri missing or not http(s)');
    return meta.jwks_uri;
  };

  const keys = new RemoteKeys(
    () => {
      jwksUri ??= discover().catch((err) => { jwksUri = undefined; throw err; });
      return jwksUri;
    },
    { timeoutMs, cooldownMs: opts.refetchCooldownMs ?? DEFAULT_REFETCH_COOLDOWN_MS, maxAgeMs: opts.keysMaxAgeMs ?? DEFAULT_KEYS_MAX_AGE_MS, now },
    new Backoff(retryBase, retryMax, now),
  );

  const rules: ClaimRules = { issuer: opts.issuer, audience: opts.audience, groupsClaim: opts.groupsClaim, now };
  // Tokens verified in the last minute are not verified again (access/verified-tokens.ts).
  return cachingVerifier({ verify: (token) => verifyToken(token, keys.getKey, rules), ready: () => keys.ensure() }, { now });
}
