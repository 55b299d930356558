import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  base64url,
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
} from 'jose';
import { createOidcVerifier } from '../../access/identity.js';
import { assertDevListenersLoopback, DEV_KEY_FILE, loadDevIssuer } from '../../access/dev-issuer.js';
import { TokenRejected, type IdentityVerifier } from '../../access/identity.types.js';

const AUD = 'pam-proxy';
const nowSec = () => Math.floor(Date.now() / 1000);

interface SigningKey { kid: string; alg: string; privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK }

async function makeKey(alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA', kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

/** A real OIDC issuer on 127.0.0.1:0 serving discovery and JWKS, counting requests. */
class TestIssuer {
  server: Server;
  url = '';
  keys: JWK[] = [];
  hits = { discovery: 0, jwks: 0 };

  constructor() {
    this.server = createServer((req, res) => {
      if (req.url === '/.well-known/openid-configuration') {
        this.hits.discovery++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ issuer: this.url, jwks_uri: `${this.url}/jwks`, id_token_signing_alg_values_supported: ['RS256'] }));
      } else if (req.url === '/jwks') {
        this.hits.jwks++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: this.keys }));
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

interface TokenSpec {
  iss?: string;
  aud?: string;
  sub?: string | undefined;
  exp?: number | undefined;
  nbf?: number;
  claims?: Record<string, unknown>;
  kid?: string;
  alg?: string;
}

async function sign(key: SigningKey, issuer: string, spec: TokenSpec = {}): Promise<string> {
  const payload: Record<string, unknown> = {
    iss: spec.iss ?? issuer,
    aud: spec.aud ?? AUD,
    iat: nowSec(),
    ...('exp' in spec ? (spec.exp === undefined ? {} : { exp: spec.exp }) : { exp: nowSec() + 600 }),
    ...('sub' in spec ? (spec.sub === undefined ? {} : { sub: spec.sub }) : { sub: 'user-123' }),
    ...(spec.nbf !== undefined ? { nbf: spec.nbf } : {}),
    ...spec.claims,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: spec.alg ?? key.alg, kid: spec.kid ?? key.kid, typ: 'JWT' })
    .sign(key.privateKey);
}

async function rejection(verifier: IdentityVerifier, token: string): Promise<TokenRejected> {
  const err = await verifier.verify(token).then(
    () => { throw new Error('token was accepted'); },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenRejected);
  const rejected = err as TokenRejected;
  // The reason and message are safe to show: never the token, nor any of its parts.
  for (const part of token.split('.').filter((p) => p.length > 8)) {
    expect(rejected.reason).not.toContain(part);
    expect(rejected.message).not.toContain(part);
  }
  return rejected;
}

describe('OIDC verifier against a real local issuer', () => {
  let issuer: TestIssuer;
  let rsa: SigningKey, es: SigningKey, ed: SigningKey, ps: SigningKey;
  let verifier: IdentityVerifier;

  beforeAll(async () => {
    [rsa, es, ed, ps] = await Promise.all([
      makeKey('RS256', 'rsa-1'), makeKey('ES256', 'ec-1'), makeKey('EdDSA', 'ed-1'), makeKey('PS256', 'ps-1'),
    ]);
  });

  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function startIssuer(keys: SigningKey[]): Promise<TestIssuer> {
    const i = await new TestIssuer().start();
    i.keys = keys.map((k) => k.jwk);
    cleanups.push(() => i.stop());
    return i;
  }

  async function setup(): Promise<void> {
    issuer = await startIssuer([rsa, es, ed, ps]);
    verifier = createOidcVerifier({ issuer: issuer.url, audience: AUD, groupsClaim: 'groups' });
  }

  it('accepts RS256, PS256, ES256 and EdDSA tokens and builds the identity', async () => {
    await setup();
    for (const key of [rsa, ps, es, ed]) {
      const id = await verifier.verify(await sign(key, issuer.url, {
        claims: { preferred_username: 'alice', email: 'alice@example.com', groups: ['dba', 'ops'] },
      }));
      expect(id.subject).toBe('user-123');
      expect(id.user).toBe('alice');
      expect(id.email).toBe('alice@example.com');
      expect(id.groups).toEqual(['dba', 'ops']);
      expect(id.issuer).toBe(issuer.url);
      expect(id.expiresAt).toBeGreaterThan(Date.now());
    }
    // Discovery and JWKS were fetched once and cached.
    expect(issuer.hits).toEqual({ discovery: 1, jwks: 1 });
  });

  it('keeps amr and acr, falls back user to email then sub', async () => {
    await setup();
    const mfa = await verifier.verify(await sign(rsa, issuer.url, { claims: { email: 'bob@example.com', amr: ['pwd', 'otp'], acr: 'urn:mfa' } }));
    expect(mfa.amr).toEqual(['pwd', 'otp']);
    expect(mfa.acr).toBe('urn:mfa');
    expect(mfa.user).toBe('bob@example.com');
    const bare = await verifier.verify(await sign(rsa, issuer.url, { claims: { amr: 'otp', acr: 3 } }));
    expect(bare.user).toBe('user-123');
    expect(bare.amr).toBeUndefined();
    expect(bare.acr).toBeUndefined();
  });

  it('reads groups from the configured claim: array, single string, anything else is empty', async () => {
    await setup();
    const custom = createOidcVerifier({ issuer: issuer.url, audience: AUD, groupsClaim: 'roles' });
    const groupsOf = async (v: IdentityVerifier, claims: Record<string, unknown>) => (await v.verify(await sign(es, issuer.url, { claims }))).groups;
    expect(await groupsOf(custom, { roles: ['admin', 'audit'], groups: ['ignored'] })).toEqual(['admin', 'audit']);
    expect(await groupsOf(custom, { roles: 'admin' })).toEqual(['admin']);
    expect(await groupsOf(custom, { roles: 42 })).toEqual([]);
    expect(await groupsOf(custom, { roles: ['admin', 7] })).toEqual([]);
    expect(await groupsOf(custom, { roles: { admin: true } })).toEqual([]);
    expect(await groupsOf(custom, {})).toEqual([]);
    const nested = createOidcVerifier({ issuer: issuer.url, audience: AUD, groupsClaim: 'realm_access.roles' });
    expect(await groupsOf(nested, { realm_access: { roles: ['kc-admin'] } })).toEqual(['kc-admin']);
  });

  it('accepts a token expired 30 s ago (within clock skew)', async () => {
    await setup();
    const id = await verifier.verify(await sign(ed, issuer.url, { exp: nowSec() - 30 }));
    expect(id.subject).toBe('user-123');
  });

  it('refuses each kind of bad token with the right reason', async () => {
    await setup();
    const reason = async (token: string) => (await rejection(verifier, token)).reason;

    expect(await reason(await sign(rsa, issuer.url, { exp: nowSec() - 120 }))).toBe('expired');
    expect(await reason(await sign(rsa, issuer.url, { aud: 'someone-else' }))).toBe('wrong audience');
    expect(await reason(await sign(rsa, issuer.url, { iss: 'https://evil.example' }))).toBe('wrong issuer');
    expect(await reason(await sign(rsa, issuer.url, { nbf: nowSec() + 300 }))).toBe('not yet valid');
    expect(await reason(await sign(rsa, issuer.url, { exp: undefined }))).toBe('missing expiry');
    expect(await reason(await sign(rsa, issuer.url, { sub: undefined }))).toBe('missing subject');

    // Signed by a key the issuer never published.
    const stranger = await makeKey('RS256', 'not-published');
    expect(await reason(await sign(stranger, issuer.url))).toBe('unknown signing key');
    // Signed by a stranger's key but claiming a published kid.
    expect(await reason(await sign(stranger, issuer.url, { kid: rsa.kid }))).toBe('bad signature');

    // alg: none, unsigned.
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const claims = { iss: issuer.url, aud: AUD, sub: 'root', exp: nowSec() + 600 };
    expect(await reason(`${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`)).toBe('algorithm not allowed');

    // HS256 with the issuer's public key (PEM and JWK JSON) as the HMAC secret: the classic confusion attack.
    for (const secret of [await exportSPKI(rsa.publicKey), JSON.stringify(rsa.jwk)]) {
      const hs = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
        .sign(new TextEncoder().encode(secret));
      expect(await reason(hs)).toBe('algorithm not allowed');
    }

    // Tampered payload: valid token, payload swapped for one naming another subject.
    const good = await sign(es, issuer.url, { claims: { groups: ['dev'] } });
    const [h, , s] = good.split('.');
    const forged = `${h}.${enc({ ...claims, groups: ['admin'] })}.${s}`;
    expect(await reason(forged)).toBe('bad signature');

    // Garbage and oversize input.
    expect(await reason('not-a-jwt')).toBe('malformed token');
    expect(await reason('a.b.c')).toBe('malformed token');
    expect(await reason(await sign(rsa, issuer.url, { claims: { pad: 'x'.repeat(17 * 1024) } }))).toBe('token too large');

    // The good token still passes: the refusals above were about the tokens, not the setup.
    expect((await verifier.verify(good)).groups).toEqual(['dev']);
  });

  it('fails closed when the issuer is down, and retries discovery once the back-off has passed', async () => {
    issuer = await startIssuer([rsa]);
    const url = issuer.url;
    const token = await sign(rsa, url);
    await issuer.stop();
    cleanups.pop();

    let clock = Date.now();
    const v = createOidcVerifier({ issuer: url, audience: AUD, groupsClaim: 'groups', fetchTimeoutMs: 2_000, now: () => clock });
    expect((await rejection(v, token)).reason).toBe('identity provider unreachable');

    // Bring the issuer back on the same port: within the back-off (1 s) nothing is fetched...
    const back = new TestIssuer();
    back.url = url;
    back.keys = [rsa.jwk];
    await new Promise<void>((ok) => back.server.listen(Number(new URL(url).port), '127.0.0.1', ok));
    cleanups.push(() => back.stop());
    expect((await rejection(v, token)).reason).toBe('identity provider unreachable');
    expect(back.hits.discovery).toBe(0);
    // ...after it, the same verifier accepts the token.
    clock += 1_001;
    expect((await v.verify(token)).subject).toBe('user-123');
    expect(back.hits.discovery).toBe(1);
  });

  it('backs off while the JWKS fails: a flood of tokens costs one fetch per back-off step, not one each', async () => {
    issuer = await startIssuer([rsa]);
    let failing = true;
    const jwksHandler = issuer.server.listeners('request')[0] as (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
    issuer.server.removeAllListeners('request');
    issuer.server.on('request', (req, res) => {
      if (req.url === '/jwks' && failing) {
        issuer.hits.jwks++;
        res.statusCode = 503;
        return res.end();
      }
      jwksHandler(req, res);
    });
    let clock = Date.now();
    const v = createOidcVerifier({ issuer: issuer.url, audience: AUD, groupsClaim: 'groups', now: () => clock });
    const token = await sign(rsa, issuer.url);
    for (let i = 0; i < 50; i++) expect((await rejection(v, token)).reason).toBe('identity provider unreachable');
    expect(issuer.hits.jwks).toBe(1);
    clock += 1_001; // first step: 1 s
    for (let i = 0; i < 20; i++) await rejection(v, token);
    expect(issuer.hits.jwks).toBe(2);
    clock += 1_500; // second step is 2 s: not yet
    await rejection(v, token);
    expect(issuer.hits.jwks).toBe(2);
    clock += 600;
    failing = false;
    expect((await v.verify(token)).subject).toBe('user-123');
    expect(issuer.hits.jwks).toBe(3);
    expect(issuer.hits.discovery).toBe(1);
  });

  it('fails closed when the JWKS is unreachable on refetch', async () => {
    issuer = await startIssuer([rsa]);
    let clock = Date.now();
    const v = createOidcVerifier({ issuer: issuer.url, audience: AUD, groupsClaim: 'groups', refetchCooldownMs: 30_000, now: () => clock });
    expect((await v.verify(await sign(rsa, issuer.url))).subject).toBe('user-123');
    const newKeyToken = await sign(es, issuer.url);
    await issuer.stop();
    cleanups.pop();
    clock += 31_000;
    expect((await rejection(v, newKeyToken)).reason).toBe('identity provider unreachable');
  });

  it('refuses a discovery document that names another issuer', async () => {
    issuer = await startIssuer([rsa]);
    // Configured with a trailing slash: discovery is fetched from the same place, but the document says
    // issuer "http://127.0.0.1:port" without it; OIDC Discovery requires an exact match.
    const configured = `${issuer.url}/`;
    const v = createOidcVerifier({ issuer: configured, audience: AUD, groupsClaim: 'groups' });
    expect((await rejection(v, await sign(rsa, configured))).reason).toBe('identity provider unreachable');
    expect(issuer.hits.discovery).toBe(1);
    expect(issuer.hits.jwks).toBe(0);
  });

  it('picks up rotated keys, but unknown kids do not hammer the issuer', async () => {
    issuer = await startIssuer([rsa]);
    let clock = Date.now();
    const v = createOidcVerifier({ issuer: issuer.url, audience: AUD, groupsClaim: 'groups', refetchCooldownMs: 30_000, now: () => clock });
    expect((await v.verify(await sign(rsa, issuer.url))).subject).toBe('user-123');
    expect(issuer.hits).toEqual({ discovery: 1, jwks: 1 });

    // A flood of tokens with made-up kids, concurrently and in sequence, within one cooldown.
    const stranger = await makeKey('ES256', 'x');
    const flood = await Promise.all(Array.from({ length: 25 }, (_, i) => sign(stranger, issuer.url, { kid: `made-up-${i}` })));
    clock += 31_000;
    const reasons = await Promise.all(flood.map(async (t) => (await rejection(v, t)).reason));
    for (const t of flood) reasons.push((await rejection(v, t)).reason);
    expect(new Set(reasons)).toEqual(new Set(['unknown signing key']));
    // At most one refetch for the whole flood (the cooldown had passed once).
    expect(issuer.hits.jwks).toBe(2);
    expect(issuer.hits.discovery).toBe(1);

    // The issuer rotates: publishes a new key and signs with it.
    issuer.keys = [rsa.jwk, es.jwk];
    const rotated = await sign(es, issuer.url, { claims: { preferred_username: 'carol' } });
    // Within the cooldown the new kid is not fetched yet (fail closed, no extra request)…
    expect((await rejection(v, rotated)).reason).toBe('unknown signing key');
    expect(issuer.hits.jwks).toBe(2);
    // …and once it has passed, one refetch finds it.
    clock += 31_000;
    expect((await v.verify(rotated)).user).toBe('carol');
    expect(issuer.hits.jwks).toBe(3);
    // Known keys never cost a request.
    for (let i = 0; i < 10; i++) await v.verify(await sign(rsa, issuer.url));
    expect(issuer.hits.jwks).toBe(3);
  });

  it('refetches keys once they are older than keysMaxAgeMs, so withdrawn keys stop working', async () => {
    issuer = await startIssuer([rsa, es]);
    let clock = Date.now();
    const v = createOidcVerifier({ issuer: issuer.url, audience: AUD, groupsClaim: 'groups', keysMaxAgeMs: 60_000, now: () => clock });
    const token = await sign(es, issuer.url, { exp: nowSec() + 3600 });
    await v.verify(token);
    issuer.keys = [rsa.jwk];
    clock += 61_000;
    expect((await rejection(v, token)).reason).toBe('unknown signing key');
    expect(issuer.hits.jwks).toBe(2);
  });
});

describe('dev issuer', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    while (dirs.length) await rm(dirs.pop()!, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'pam-dev-issuer-'));
    dirs.push(d);
    return d;
  };

  it('issues tokens its verifier accepts, with groups and amr', async () => {
    const dir = await tempDir();
    const dev = await loadDevIssuer(join(dir, 'data'), AUD);
    const token = await dev.issue('alice', ['dba'], { amr: ['pwd', 'otp'] });
    const id = await dev.verifier.verify(token);
    expect(id).toMatchObject({ subject: 'alice', user: 'alice', groups: ['dba'], amr: ['pwd', 'otp'], issuer: 'pam-dev' });
    // Default lifetime 8 h.
    const claims = decodeJwt(token);
    expect(claims.exp! - claims.iat!).toBe(8 * 3600);
    expect(id.expiresAt).toBe(claims.exp! * 1000);
  });

  it('applies the same checks as the OIDC verifier', async () => {
    const dir = await tempDir();
    const dev = await loadDevIssuer(dir, AUD);
    const shortLived = await dev.issue('alice', [], { ttlSec: 1 });
    const token = await dev.issue('alice', []);
    const other = await loadDevIssuer(dir, 'another-audience');
    expect((await rejection(other.verifier, token)).reason).toBe('wrong audience');
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p!)));
    const forged = `${h}.${base64url.encode(JSON.stringify({ ...payload, sub: 'root' }))}.${s}`;
    expect((await rejection(dev.verifier, forged)).reason).toBe('bad signature');
    expect((await rejection(dev.verifier, `${h}.${p}.`)).reason).toBe('bad signature');
    const unsigned = `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${p}.`;
    expect((await rejection(dev.verifier, unsigned)).reason).toBe('algorithm not allowed');
    expect((await dev.verifier.verify(shortLived)).subject).toBe('alice');
  });

  it('persists its key across loads, in a 0600 file', async () => {
    const dir = await tempDir();
    const first = await loadDevIssuer(dir, AUD);
    const token = await first.issue('bob', ['ops']);
    const second = await loadDevIssuer(dir, AUD);
    expect((await second.verifier.verify(token)).user).toBe('bob');
    const mode = (await stat(join(dir, DEV_KEY_FILE))).mode & 0o777;
    expect(mode).toBe(0o600);
  });

  it('creates one key when loaded concurrently', async () => {
    const dir = await tempDir();
    const [a, b] = await Promise.all([loadDevIssuer(dir, AUD), loadDevIssuer(dir, AUD)]);
    expect((await b.verifier.verify(await a.issue('x', []))).subject).toBe('x');
  });

  it('refuses tokens from another dev data dir', async () => {
    const mine = await loadDevIssuer(await tempDir(), AUD);
    const theirs = await loadDevIssuer(await tempDir(), AUD);
    const token = await theirs.issue('mallory', ['admin']);
    expect((await theirs.verifier.verify(token)).user).toBe('mallory');
    expect((await rejection(mine.verifier, token)).reason).toBe('unknown signing key');
  });

  it('only runs on loopback listeners', () => {
    expect(() => assertDevListenersLoopback({ http: { host: '127.0.0.1', port: 8080 }, ssh: { host: '::1', port: 2222 } })).not.toThrow();
    expect(() => assertDevListenersLoopback({ http: { host: '127.0.0.1', port: 8080 }, ssh: { host: '0.0.0.0', port: 2222 } }))
      .toThrow(/listen\.ssh.*0\.0\.0\.0/);
    expect(() => assertDevListenersLoopback({ http: { host: '0.0.0.0', port: 8080 } })).toThrow(/listen\.http/);
    expect(() => assertDevListenersLoopback({ http: { host: 'localhost', port: 1 }, postgres: { host: '10.0.0.5', port: 5432 } }))
      .toThrow(/listen\.postgres/);
  });
});
