/**
 * A built-in token issuer for first runs (`identity: { dev: true }`): no IdP needed.
 *
 * The Ed25519 key lives in `{data_dir}/dev-issuer.jwk` (mode 0600), created on first use and
 * reused afterwards. Tokens are checked by the same code as OIDC tokens (verifyToken), only
 * the key source differs. Dev mode is for loopback listeners only: anyone who can read the
 * data dir can mint any identity.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  SignJWT,
  type JWK,
} from 'jose';
import { isLoopback } from '../config/config.js';
import type { Config } from '../config/config.types.js';
import type { IdentityVerifier } from './identity.types.js';
import { verifyToken } from './identity.js';
import { cachingVerifier } from './verified-tokens.js';

export const DEV_ISSUER = 'pam-dev';
export const DEV_KEY_FILE = 'dev-issuer.jwk';
const DEV_ALG = 'EdDSA';
const DEFAULT_TTL_SEC = 8 * 60 * 60;

export interface DevIssueOptions {
  /** Token lifetime in seconds, default 8 h. */
  ttlSec?: number;
  /** `amr` claim, e.g. ["pwd", "otp"]; omitted when not given. */
  amr?: string[];
  /** `acr` claim. */
  acr?: string;
  /** `auth_time` claim, seconds since epoch; omitted when not given. */
  authTime?: number;
  /** `email` claim. */
  email?: string;
  /** `sub` claim when it should differ from the user name. */
  subject?: string;
}

export interface DevIssuer {
  verifier: IdentityVerifier;
  /** Signs a token for `user` (used as `sub` and `preferred_username`). */
  issue(user: string, groups: string[], opts?: DevIssueOptions): Promise<string>;
}

/** Loads (or creates on first use) the dev issuer key in `dataDir`. */
export async function loadDevIssuer(dataDir: string, audience: string): Promise<DevIssuer> {
  const privateJwk = await loadOrCreateKey(join(dataDir, DEV_KEY_FILE));
  const { d: _d, ...publicJwk } = privateJwk;
  const privateKey = await importJWK(privateJwk, DEV_ALG);
  const keys = createLocalJWKSet({ keys: [publicJwk] });
  const rules = { issuer: DEV_ISSUER, audience, groupsClaim: 'groups' };

  return {
    verifier: cachingVerifier({ verify: (token) => verifyToken(token, keys, rules) }),
    async issue(user, groups, opts = {}) {
      const ttl = opts.ttlSec ?? DEFAULT_TTL_SEC;
      if (!Number.isInteger(ttl) || ttl <= 0) throw new RangeError('ttlSec must be a positive whole number of seconds');
      if (user === '') throw new RangeError('user must not be empty');
      const claims: Record<string, unknown> = { preferred_username: user, groups: [...groups] };
      if (opts.amr) claims.amr = [...opts.amr];
      if (opts.acr) claims.acr = opts.acr;
      if (opts.authTime !== undefined) claims.auth_time = opts.authTime;
      if (opts.email) claims.email = opts.email;
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: DEV_ALG, kid: privateJwk.kid, typ: 'JWT' })
        .setIssuer(DEV_ISSUER)
        .setAudience(audience)
        .setSubject(opts.subject ?? user)
        .setIssuedAt(now)
        .setExpirationTime(now + ttl)
        .setJti(randomUUID())
        .sign(privateKey);
    },
  };
}

async function loadOrCreateKey(file: string): Promise<JWK> {
  try {
    return await readKey(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const dir = join(file, '..');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = await generateKeyPair(DEV_ALG, { crv: 'Ed25519', extractable: true });
  const jwk = await exportJWK(privateKey);
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.alg = DEV_ALG;
  jwk.use = 'sig';

  // Write a private temp file, then link it into place: link fails if the key already exists,
  // so two processes starting at once agree on one key and nobody sees a half-written file.
  const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(jwk, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
  return readKey(file);
}

async function readKey(file: string): Promise<JWK> {
  const text = await readFile(file, 'utf8');
  const st = await stat(file);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new Error(`${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch {
    throw new Error(`${file} is not a JSON Web Key; delete it to create a new dev issuer key`);
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string' || typeof jwk.x !== 'string') {
    throw new Error(`${file} is not an Ed25519 private key; delete it to create a new dev issuer key`);
  }
  jwk.kid ??= await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x });
  jwk.alg = DEV_ALG;
  return jwk;
}

/** Dev tokens can be minted by anyone with the data dir: refuse to serve them beyond loopback. */
export function assertDevListenersLoopback(listen: Config['listen']): void {
  for (const name of ['ssh', 'postgres', 'http'] as const) {
    const l = listen[name];
    if (l && !isLoopback(l.host)) {
      throw new Error(`identity.dev is only allowed on loopback listeners, but listen.${name} is ${l.host}:${l.port}; use 127.0.0.1 or configure a real issuer`);
    }
  }
}
