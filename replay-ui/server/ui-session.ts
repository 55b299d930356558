import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../../access/identity.types.js';
import { TokenRejected } from '../../access/identity.types.js';
import type { HttpDeps } from './http.types.js';
import { capabilitiesOf } from '../../access/capabilities.js';
import { HttpError } from './http-errors.js';
import { field, type Route } from './router.js';
import { auditBy, auditEvent } from '../../recorder/audit-events.js';

export const COOKIE = 'pam_session';
/** Upper bound of a browser session; a shorter token expiry wins. */
const MAX_SESSION_MS = 8 * 3600_000;
const OIDC_STATE_MS = 10 * 60_000;

interface UiSession { identity: Identity; csrf: string; expiresAt: number }
interface PendingLogin { verifier: string; nonce: string; expiresAt: number; returnTo: string; browser: string; source: string }
/** OIDC sign-ins begun and not finished (each lives OIDC_STATE_MS), per client address and in all. */
const MAX_PENDING_PER_SOURCE = 20;
const MAX_PENDING = 10_000;
/** Holds the browser half of an OIDC state (issue 12). */
const OIDC_COOKIE = 'pam_oidc';
const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

/** What the app may show; the server checks the same roles again on every route. */
export function capabilities(cp: HttpDeps, identity: Identity): { audit: boolean; approve: boolean; editPolicies: boolean } {
  const { audit, approve, editPolicies } = capabilitiesOf(identity, cp.roles());
  return { audit, approve, editPolicies };
}

function parseCookies(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** Adds a Set-Cookie header without dropping the ones already set on this answer. */
function addCookie(res: ServerResponse, cookie: string): void {
  const prev = res.getHeader('set-cookie');
  res.setHeader('set-cookie', [...(Array.isArray(prev) ? prev : prev === undefined ? [] : [String(prev)]), cookie]);
}

function sameText(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a === b;
}

/**
 * A request that comes from another site is refused even before the CSRF token is looked at:
 * browsers send Origin on every state-changing fetch, and it must name this host.
 */
export function checkOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  if (!origin) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new HttpError(403, 'bad Origin header');
  }
  if (host !== req.headers.host) throw new HttpError(403, 'cross-site request refused');
}

/**
 * Browser sessions: an opaque random id in an HttpOnly, SameSite=Strict cookie maps to the
 * verified identity kept in memory (a restart signs everyone out, which is the safe default).
 * State-changing requests by cookie must echo the session's CSRF token in X-CSRF-Token.
 */
export class UiSessions {
  private readonly sessions = new Map<string, UiSession>();
  private readonly pending = new Map<string, PendingLogin>();
  private readonly sweeper: NodeJS.Timeout;

  /** `; Secure` when browsers reach us over TLS (our own, or a terminating proxy's public https URL). */
  private readonly secure: string;

  constructor(private readonly cp: HttpDeps) {
    this.secure = cp.config.http?.tls || cp.config.publicUrl?.startsWith('https://') ? '; Secure' : '';
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sessions.clear();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(k);
    for (const [k, p] of this.pending) if (p.expiresAt <= now) this.pending.delete(k);
  }

  /** The session a request's cookie names, if any and not expired. */
  lookup(req: IncomingMessage): UiSession | undefined {
    const id = parseCookies(req)[COOKIE];
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= Date.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  /** Authenticator for the HTTP server: the cookie's identity; CSRF and Origin checked on changes. */
  authenticate = async (req: IncomingMessage): Promise<Identity | undefined> => {
    const s = this.lookup(req);
    if (!s) return undefined;
    if (!['GET', 'HEAD'].includes(req.method ?? 'GET')) {
      checkOrigin(req);
      const sent = req.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !sameText(sent, s.csrf)) throw new HttpError(403, 'missing or wrong X-CSRF-Token');
    }
    return s.identity;
  };

  start(res: ServerResponse, identity: Identity): UiSession {
    const id = randomBytes(32).toString('base64url');
    const expiresAt = Math.min(Date.now() + MAX_SESSION_MS, identity.expiresAt);
    if (expiresAt <= Date.now()) throw new HttpError(401, 'token is about to expire');
    const s: UiSession = { identity, csrf: randomBytes(24).toString('base64url'), expiresAt };
    this.sessions.set(id, s);
    const maxAge = Math.max(1, Math.floor((expiresAt - Date.now()) / 1000));
    addCookie(res, `${COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}${this.secure}`);
    return s;
  }

  private end(req: IncomingMessage, res: ServerResponse): void {
    const id = parseCookies(req)[COOKIE];
    if (id) this.sessions.delete(id);
    addCookie(res, `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${this.secure}`);
  }

  private describe(s: UiSession) {
    const caps = capabilities(this.cp, s.identity);
    return {
      user: s.identity.user, groups: s.identity.groups, roles: this.cp.access.rolesFor(s.identity).map((r) => r.name),
      can: caps, csrf: s.csrf, expiresAt: new Date(s.expiresAt).toISOString(),
    };
  }

  routes(): Route[] {
    const cp = this.cp;
    return [
      { method: 'GET', path: '/auth/info', public: true, handler: () => ({ dev: !!cp.dev, oidc: !cp.config.identity.dev && !!cp.config.identity.issuer }) },
      {
        // Token exchange for automation and the dev form: the bearer token becomes a cookie.
        method: 'POST', path: '/api/v1/session',
        handler: async ({ req, res, identity }) => {
          if (!req.headers.authorization) throw new HttpError(400, 'send the IAM token as "Authorization: Bearer TOKEN"');
          const s = this.start(res, identity);
          await cp.audit.append(auditBy(identity, 'ui.signin', { via: 'token' }));
          return this.describe(s);
        },
      },
      {
        method: 'GET', path: '/api/v1/session',
        handler: ({ req }) => {
          const s = this.lookup(req);
          if (!s) throw new HttpError(401, 'no browser session');
          return this.describe(s);
        },
      },
      {
        method: 'DELETE', path: '/api/v1/session',
        handler: ({ req, res }) => {
          this.end(req, res);
          return { ok: true };
        },
      },
      {
        // Dev issuer only (loopback listeners, `identity: { dev: true }`): sign in as anyone.
        method: 'POST', path: '/auth/dev', public: true,
        handler: async ({ req, res, body }) => {
          if (!cp.dev) throw new HttpError(404, 'the dev sign-in exists only with the dev issuer');
          checkOrigin(req);
          const secret = field(body, 'secret', { max: 64 }) ?? '';
          // The fields first: a sign-in refused for a typo in them does not use the secret up.
          const user = field(body, 'user', { required: true, max: 64 })!;
          if (!/^[A-Za-z0-9._@-]+$/.test(user)) throw new HttpError(400, '"user" may hold letters, digits and . _ @ -');
          const groups = (field(body, 'groups', { max: 512 }) ?? '').split(',').map((g) => g.trim()).filter(Boolean);
          if (groups.some((g) => !/^[A-Za-z0-9._-]+$/.test(g))) throw new HttpError(400, '"groups" is a comma-separated list of names');
          const check = cp.dev.takeSigninSecret(secret);
          if (check !== 'ok') {
            const why = check === 'used' ? 'dev sign-in secret already used' : 'wrong or missing dev sign-in secret';
            // Rate-limited per address like refused tokens (counted, not dropped).
            const event = { ...auditEvent('ui.signin-refused', { via: 'dev', why, client: req.socket.remoteAddress }), reason: why };
            await (cp.rejections ? cp.rejections.rejected(event) : cp.audit.append(event));
            throw new HttpError(403, check === 'used'
              ? 'this dev sign-in secret was already used (each signs in once); `pam serve` printed the next one on its terminal'
              : 'the dev sign-in needs the secret `pam serve` printed on its terminal (single-use; the latest one printed)');
          }
          const identity = await cp.identity.verify(await cp.dev.issue(user, groups, { ttlSec: 8 * 3600 }));
          const s = this.start(res, identity);
          await cp.audit.append(auditBy(identity, 'ui.signin', { via: 'dev' }));
          return this.describe(s);
        },
      },
      { method: 'GET', path: '/auth/login', public: true, handler: (ctx) => this.oidcLogin(ctx.req, ctx.res, ctx.url) },
      { method: 'GET', path: '/auth/callback', public: true, handler: (ctx) => this.oidcCallback(ctx.req, ctx.res, ctx.url) },
    ];
  }

  private async discovery(): Promise<{ authorization_endpoint: string; token_endpoint: string }> {
    const issuer = this.cp.config.identity.issuer;
    if (this.cp.config.identity.dev || !issuer) throw new HttpError(404, 'no OIDC issuer is configured');
    const r = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
    if (!r.ok) throw new HttpError(502, 'the identity provider did not answer discovery');
    const d = (await r.json()) as Record<string, unknown>;
    if (typeof d.authorization_endpoint !== 'string' || typeof d.token_endpoint !== 'string') throw new HttpError(502, 'discovery lacks endpoints');
    return { authorization_endpoint: d.authorization_endpoint, token_endpoint: d.token_endpoint };
  }

  /** The public URL when configured, else the (already checked) Host this browser used. */
  private redirectUri(req: IncomingMessage | undefined, url: URL): string {
    if (this.cp.config.publicUrl) return `${this.cp.config.publicUrl}/auth/callback`;
    const host = req?.headers.host ?? url.host;
    return `${this.cp.config.http?.tls ? 'https' : 'http'}://${host}/auth/callback`;
  }

  /** Authorization code flow with PKCE (RFC 7636): state and verifier stay server-side. */
  private async oidcLogin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<undefined> {
    // Public, so capped: each begun sign-in is kept server-side for 10 minutes. Checked before
    // discovery, so a flood of begun logins costs the IdP nothing either.
    const source = (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
    if (this.pending.size >= MAX_PENDING) this.sweep();
    let mine = 0;
    for (const p of this.pending.values()) if (p.source === source && p.expiresAt > Date.now()) mine++;
    if (mine >= MAX_PENDING_PER_SOURCE || this.pending.size >= MAX_PENDING) {
      const why = mine >= MAX_PENDING_PER_SOURCE ? 'too many sign-ins in progress from this address' : 'too many sign-ins in progress';
      const event = { ...auditEvent('ui.signin-refused', { via: 'oidc', why, client: source }), reason: why };
      await (this.cp.rejections ? this.cp.rejections.rejected(event, source) : this.cp.audit.append(event));
      res.setHeader('retry-after', String(OIDC_STATE_MS / 1000));
      throw new HttpError(429, `${why}; finish one, or start again in a few minutes`);
    }
    const d = await this.discovery();
    const state = randomBytes(24).toString('base64url');
    const verifier = randomBytes(48).toString('base64url');
    const nonce = randomBytes(16).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    // The state is bound to this browser: a cookie only it holds, checked at the callback, so a
    // callback link made from someone else's login (login CSRF) signs nobody in.
    const browser = randomBytes(24).toString('base64url');
    this.pending.set(state, { verifier, nonce, expiresAt: Date.now() + OIDC_STATE_MS, returnTo: this.redirectUri(req, url), browser: sha256(browser), source });
    // SameSite=Lax: the IdP's redirect back is a cross-site top-level GET, which Strict would strip.
    addCookie(res, `${OIDC_COOKIE}=${browser}; HttpOnly; SameSite=Lax; Path=/auth/callback; Max-Age=${OIDC_STATE_MS / 1000}${this.secure}`);
    const to = new URL(d.authorization_endpoint);
    to.search = new URLSearchParams({
      response_type: 'code', client_id: this.cp.config.identity.audience, redirect_uri: this.redirectUri(req, url),
      scope: 'openid profile email', state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
    }).toString();
    res.writeHead(302, { location: to.toString(), 'cache-control': 'no-store' });
    res.end();
    return undefined;
  }

  private async oidcCallback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<undefined> {
    const state = url.searchParams.get('state') ?? '';
    const p = this.pending.get(state);
    const browser = parseCookies(req)[OIDC_COOKIE];
    addCookie(res, `${OIDC_COOKIE}=; HttpOnly; SameSite=Lax; Path=/auth/callback; Max-Age=0${this.secure}`);
    if (!p || p.expiresAt <= Date.now()) {
      this.pending.delete(state);
      throw new HttpError(400, 'sign-in expired or was not started here; start again at /auth/login');
    }
    if (!browser || !sameText(sha256(browser), p.browser)) {
      // Keep the pending login: the browser that started it may still come back with its cookie.
      await this.cp.audit.append(auditEvent('ui.signin-refused', { via: 'oidc', why: 'state not bound to this browser', client: req.socket.remoteAddress }));
      throw new HttpError(400, 'this sign-in was started in another browser; start again at /auth/login');
    }
    this.pending.delete(state);
    const code = url.searchParams.get('code');
    if (!code) throw new HttpError(400, `sign-in refused by the identity provider: ${(url.searchParams.get('error') ?? 'no code').slice(0, 100)}`);
    const d = await this.discovery();
    const r = await fetch(d.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: p.returnTo, client_id: this.cp.config.identity.audience, code_verifier: p.verifier }).toString(),
      signal: AbortSignal.timeout(10_000),
    });
    const tok = (await r.json().catch(() => ({}))) as { id_token?: unknown };
    if (!r.ok || typeof tok.id_token !== 'string') throw new HttpError(502, 'the identity provider did not return an id_token');
    let identity: Identity;
    try {
      identity = await this.cp.identity.verify(tok.id_token);
    } catch (e) {
      throw new HttpError(401, `token rejected: ${e instanceof TokenRejected ? e.reason : 'check failed'}`);
    }
    const [, payload] = tok.id_token.split('.');
    const nonce = (JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as { nonce?: unknown }).nonce;
    if (nonce !== p.nonce) throw new HttpError(401, 'token rejected: nonce mismatch');
    this.start(res, identity);
    await this.cp.audit.append(auditBy(identity, 'ui.signin', { via: 'oidc' }));
    res.writeHead(302, { location: '/', 'cache-control': 'no-store' });
    res.end();
    return undefined;
  }
}
