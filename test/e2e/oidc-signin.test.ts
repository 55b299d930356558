import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { chromium, type Browser } from 'playwright-core';
import { startProxy, type RunningProxy } from '../../app/serve.js';
import type { Config } from '../../config/config.types.js';

/**
 * Browser sign-in with the authorization code flow and PKCE against a small OIDC provider run
 * by the test: the provider checks the S256 challenge against the verifier the proxy sends,
 * and the proxy checks the id_token (signature, iss, aud, exp) and the nonce.
 */

let idp: Server;
let issuer: string;
let proxy: RunningProxy;
let dataDir: string;
let browser: Browser;
const seen: { challenge?: string; verifierOk?: boolean; state?: string; discovery: number } = { discovery: 0 };

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const codes = new Map<string, { challenge: string; nonce: string; redirect: string }>();
  idp = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const json = (v: unknown, status = 200) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
    if (url.pathname === '/.well-known/openid-configuration') {
      seen.discovery++;
      return json({ issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: ['ES256'] });
    }
    if (url.pathname === '/jwks') return json({ keys: [jwk] });
    if (url.pathname === '/authorize') {
      const p = url.searchParams;
      seen.challenge = p.get('code_challenge') ?? undefined;
      seen.state = p.get('state') ?? undefined;
      if (p.get('code_challenge_method') !== 'S256' || p.get('client_id') !== 'pam-proxy') return json({ error: 'bad request' }, 400);
      const code = randomBytes(12).toString('hex');
      codes.set(code, { challenge: p.get('code_challenge')!, nonce: p.get('nonce')!, redirect: p.get('redirect_uri')! });
      res.writeHead(302, { location: `${p.get('redirect_uri')}?code=${code}&state=${encodeURIComponent(p.get('state')!)}` });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        void (async () => {
          const f = new URLSearchParams(body);
          const c = codes.get(f.get('code') ?? '');
          codes.delete(f.get('code') ?? '');
          const verifierOk = !!c && createHash('sha256').update(f.get('code_verifier') ?? '').digest('base64url') === c.challenge && f.get('redirect_uri') === c.redirect;
          seen.verifierOk = verifierOk;
          if (!c || !verifierOk) return json({ error: 'invalid_grant' }, 400);
          const idToken = await new SignJWT({ preferred_username: 'olivia', groups: ['security'], nonce: c.nonce })
            .setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(issuer).setAudience('pam-proxy').setSubject('olivia-sub')
            .setIssuedAt().setExpirationTime('10m').sign(privateKey);
          json({ access_token: 'x', token_type: 'Bearer', id_token: idToken });
        })();
      });
      return;
    }
    json({ error: 'not found' }, 404);
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', () => r()));
  issuer = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;

  dataDir = await mkdtemp(join(tmpdir(), 'pam-oidc-e2e-'));
  const policiesDir = join(dataDir, 'policies');
  await mkdir(policiesDir);
  await writeFile(join(policiesDir, 'roles.yaml'), 'roles:\n  - name: security\n    groups: [security]\n    can_audit: true\n');
  proxy = await startProxy({
    file: join(dataDir, 'pam.yaml'),
    listen: { http: { host: '127.0.0.1', port: 0 } },
    dataDir, store: 'embedded', policiesDir,
    reviewTimeoutMs: 300_000,
    identity: { dev: false, issuer, audience: 'pam-proxy', groupsClaim: 'groups' },
    targets: [],
    ssh: { envAllow: [] },
    postgres: { allowPlaintextTokens: false, maxMessageBytes: 1 << 20, redactParameters: false },
  } as Config);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await new Promise((r) => idp?.close(r));
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('OIDC sign-in', () => {
  it('signs in with the authorization code flow and PKCE, and refuses a replayed or forged callback', async () => {
    const page = await browser.newPage();
    const base = `http://127.0.0.1:${proxy.http.port}`;
    await page.goto(base + '/');
    await page.locator('#oidc-login').click();
    await page.locator('#nav a[data-page=sessions]').waitFor();
    expect(await page.locator('#who').textContent()).toContain('olivia');
    expect(seen.verifierOk).toBe(true);
    const cookies = await page.context().cookies();
    const c = cookies.find((x) => x.name === 'pam_session')!;
    expect(c.httpOnly).toBe(true);
    expect(c.sameSite).toBe('Strict');
    // The state was used once: replaying the callback is refused.
    const replay = await fetch(`${base}/auth/callback?code=whatever&state=${encodeURIComponent(seen.state!)}`, { redirect: 'manual' });
    expect(replay.status).toBe(400);
    expect((await proxy.cp.audit.read()).some((e) => e.type === 'ui.signin' && e.via === 'oidc' && e.actor === 'olivia')).toBe(true);
    await page.close();
  });

  it('binds the state to the browser that began the login: a callback link opened elsewhere signs nobody in', async () => {
    const base = `http://127.0.0.1:${proxy.http.port}`;
    // The attacker begins a login and lets the IdP answer, but hands the callback link to a victim.
    const begin = await fetch(`${base}/auth/login`, { redirect: 'manual' });
    expect(begin.status).toBe(302);
    const binding = begin.headers.getSetCookie().find((c) => c.startsWith('pam_oidc='))!;
    expect(binding).toMatch(/HttpOnly; SameSite=Lax; Path=\/auth\/callback/);
    const atIdp = await fetch(begin.headers.get('location')!, { redirect: 'manual' });
    const callback = atIdp.headers.get('location')!;
    const victim = await fetch(callback, { redirect: 'manual' });
    expect(victim.status).toBe(400);
    expect(victim.headers.getSetCookie().some((c) => c.startsWith('pam_session=') && !c.includes('Max-Age=0'))).toBe(false);
    expect(((await victim.json()) as { error: { message: string } }).error.message).toContain('started in another browser');
    // The browser that began it, with its cookie, completes the same login.
    const own = await fetch(callback, { redirect: 'manual', headers: { cookie: binding.split(';')[0]! } });
    expect(own.status).toBe(302);
    expect(own.headers.getSetCookie().some((c) => c.startsWith('pam_session=') && !c.includes('Max-Age=0'))).toBe(true);
    expect((await proxy.cp.audit.read()).some((e) => e.type === 'ui.signin-refused' && e.via === 'oidc')).toBe(true);
  });

  it('caps the sign-ins one address has in progress: one more is 429 and costs the IdP nothing', async () => {
    const base = `http://127.0.0.1:${proxy.http.port}`;
    let begun = 0;
    let refused: Response | undefined;
    // Each begun login is kept server-side; earlier tests may have left some in progress.
    for (let i = 0; i < 25 && !refused; i++) {
      const r = await fetch(`${base}/auth/login`, { redirect: 'manual' });
      if (r.status === 302) begun++;
      else refused = r;
    }
    expect(begun).toBeGreaterThan(0);
    expect(refused?.status).toBe(429);
    expect(refused!.headers.get('retry-after')).toBe('600');
    expect(((await refused!.json()) as { error: { message: string } }).error.message).toContain('too many sign-ins in progress from this address');
    const asked = seen.discovery;
    expect((await fetch(`${base}/auth/login`, { redirect: 'manual' })).status).toBe(429);
    expect(seen.discovery).toBe(asked);
    expect((await proxy.cp.audit.read()).some((e) => e.type === 'ui.signin-refused' && e.via === 'oidc' && String((e as { why?: string }).why).startsWith('too many sign-ins'))).toBe(true);
  });
});
