/**
 * The HTTP listener against the real `pam serve` process (issue 12): a foreign Host (DNS
 * rebinding) reaches nothing, the dev sign-in needs the single-use secret printed on the terminal, and with
 * `listen.http: https://…` the listener speaks TLS only and its cookies are `Secure`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';

const ROLES = 'roles:\n  - name: security\n    groups: [security]\n    can_audit: true\n';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** node:http lets a test send any Host header, as a rebinding page's browser would. */
function send(url: string, opts: { method?: string; host?: string; headers?: Record<string, string>; body?: unknown; ca?: Buffer } = {}): Promise<Answer> {
  const u = new URL(url);
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)({
    host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET', ca: opts.ca,
    headers: { ...(opts.host ? { host: opts.host } : {}), ...(body ? { 'content-type': 'application/json' } : {}), ...opts.headers },
  });
  return new Promise((resolve, reject) => {
    req.once('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

let plain: PamProcess;
let tls: PamProcess;
let certDir: string;
let ca: Buffer;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'pam-cert-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' });
  ca = await readFile(join(certDir, 'cert.pem'));
  [plain, tls] = await Promise.all([
    startPamProcess({ roles: ROLES }),
    startPamProcess({ roles: ROLES, httpScheme: 'https', extra: `http: { tls_cert: "${join(certDir, 'cert.pem')}", tls_key: "${join(certDir, 'key.pem')}" }` }),
  ]);
}, 60_000);

afterAll(async () => {
  await plain?.stop();
  await tls?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

describe('HTTP listener hardening', () => {
  it('refuses a foreign Host before anything else, and serves the loopback names', async () => {
    const secret = plain.devSecret()!;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const signin = { user: 'mallory', groups: 'security', secret };
    // A rebinding page knows the port and, at worst, the secret: the Host gives it away.
    const evil = await send(`${plain.server}/auth/dev`, { method: 'POST', host: `evil.example:${plain.ports.http}`, body: signin });
    expect(evil.status).toBe(421);
    expect(JSON.parse(evil.body).error.code).toBe('bad_host');
    expect(evil.headers['set-cookie']).toBeUndefined();
    expect((await send(`${plain.server}/auth/info`, { host: 'evil.example' })).status).toBe(421);
    expect((await send(`${plain.server}/auth/info`, { host: `127.0.0.1:${plain.ports.http + 1}` })).status).toBe(421);
    // A websocket upgrade with a foreign Host is dropped without an answer.
    const ws = await send(`${plain.server}/api/v1/live/x`, { host: 'evil.example', headers: { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } }).catch((e: Error) => e);
    expect(ws).toBeInstanceOf(Error);
    for (const host of [`127.0.0.1:${plain.ports.http}`, `localhost:${plain.ports.http}`, `LOCALHOST:${plain.ports.http}`]) {
      expect((await send(`${plain.server}/auth/info`, { host })).status).toBe(200);
    }
    const sam = (await plain.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
    const audit = JSON.parse((await plain.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string; actor?: string }[];
    expect(audit.some((e) => e.actor === 'mallory')).toBe(false);
  });

  it('needs the start-up secret for the dev sign-in', async () => {
    const none = await send(`${plain.server}/auth/dev`, { method: 'POST', body: { user: 'mallory', groups: 'security' } });
    expect(none.status).toBe(403);
    expect(JSON.parse(none.body).error.message).toContain('secret');
    const wrong = await send(`${plain.server}/auth/dev`, { method: 'POST', body: { user: 'mallory', groups: 'security', secret: 'x'.repeat(24) } });
    expect(wrong.status).toBe(403);
    expect(wrong.headers['set-cookie']).toBeUndefined();
    // A typo in the fields is refused without using the secret up.
    const first = plain.devSecret()!;
    const typo = await send(`${plain.server}/auth/dev`, { method: 'POST', body: { user: 'sam smith', groups: 'security', secret: first } });
    expect(typo.status).toBe(400);
    const ok = await send(`${plain.server}/auth/dev`, { method: 'POST', body: { user: 'sam', groups: 'security', secret: first } });
    expect(ok.status).toBe(200);
    expect(ok.headers['strict-transport-security']).toBeUndefined();
    expect(String(ok.headers['set-cookie'])).toMatch(/^pam_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+$/);
    // Single-use: the same secret again is refused as used, and audited; the process printed
    // the next one on its terminal, which signs in (once).
    const again = await send(`${plain.server}/auth/dev`, { method: 'POST', body: { user: 'mallory', groups: 'security', secret: first } });
    expect(again.status).toBe(403);
    expect(JSON.parse(again.body).error.message).toContain('already used');
    expect(again.headers['set-cookie']).toBeUndefined();
    const next = plain.devSecret()!;
    expect(next).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(next).not.toBe(first);
    expect((await send(`${plain.server}/auth/dev`, { method: 'POST', body: { user: 'sam', groups: 'security', secret: next } })).status).toBe(200);
    expect((await send(`${plain.server}/auth/dev`, { method: 'POST', body: { user: 'sam', groups: 'security', secret: next } })).status).toBe(403);
    const sam = (await plain.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
    const audit = JSON.parse((await plain.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string; via?: string; why?: string; actor?: string }[];
    const refused = audit.filter((e) => e.type === 'ui.signin-refused' && e.via === 'dev');
    expect(refused.map((e) => e.why)).toEqual([
      'wrong or missing dev sign-in secret', 'wrong or missing dev sign-in secret', 'dev sign-in secret already used', 'dev sign-in secret already used',
    ]);
    expect(audit.filter((e) => e.type === 'ui.signin' && e.actor === 'sam')).toHaveLength(2);
    expect(audit.some((e) => e.actor === 'mallory')).toBe(false);
    expect(plain.log()).not.toContain(sam);
  });

  it('rate-limits audit lines for a flood of bad tokens from one source, and counts the rest', async () => {
    for (let i = 0; i < 30; i++) {
      expect((await send(`${plain.server}/api/v1/grants`, { headers: { authorization: `Bearer not.a.token${i}` } })).status).toBe(401);
    }
    const sam = (await plain.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
    const audit = JSON.parse((await plain.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string }[];
    expect(audit.filter((e) => e.type === 'token.rejected')).toHaveLength(5);
    // The count of the rest is written when the window ends or, here, when the proxy stops.
    const log = join(plain.dir, 'data', 'audit.log');
    plain.proc.kill('SIGTERM');
    await new Promise((r) => (plain.proc.exitCode !== null ? r(null) : plain.proc.once('exit', r)));
    const lines = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; count?: number; client?: string });
    expect(lines.filter((e) => e.type === 'token.rejected.suppressed').map((e) => [e.client, e.count])).toEqual([['127.0.0.1', 25]]);
  });

  it('serves TLS on an https:// listen address, with Secure cookies, and no plain HTTP', async () => {
    expect(tls.server.startsWith('https://')).toBe(true);
    const sam = (await tls.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
    const session = await send(`${tls.server}/api/v1/session`, { method: 'POST', headers: { authorization: `Bearer ${sam}` }, ca });
    expect(session.status).toBe(200);
    expect(String(session.headers['set-cookie'])).toMatch(/; Secure$/);
    expect(session.headers['strict-transport-security']).toBe('max-age=31536000');
    const dev = await send(`${tls.server}/auth/dev`, { method: 'POST', body: { user: 'sam', groups: 'security', secret: tls.devSecret() }, ca });
    expect(String(dev.headers['set-cookie'])).toMatch(/; Secure$/);
    // A client that does not trust the certificate does not get through; nor does plain HTTP.
    await expect(send(`${tls.server}/auth/info`)).rejects.toThrow(/self.signed|certificate/i);
    const clear = await send(`http://127.0.0.1:${tls.ports.http}/auth/info`).then((a) => a.status, (e: Error) => e.message);
    expect(clear).not.toBe(200);
    // The CLI works over TLS with the CA it is told to trust.
    const who = await tls.pam(['whoami', '--json'], { PAM_TOKEN: sam, NODE_EXTRA_CA_CERTS: join(certDir, 'cert.pem') });
    expect(who.stderr).toBe('');
    expect(JSON.parse(who.stdout).user).toBe('sam');
  });
});
