import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Client, type ClientChannel } from 'ssh2';
import { startProxy, type RunningProxy } from '../../app/serve.js';
import { startSshd, waitFor, type TestSshd } from './sshd.js';
import { testConfig } from './control-plane.js';

/**
 * What the browser tests of the replay UI stand on: a real OpenSSH sshd behind a real proxy
 * (`pam serve`'s startProxy), Debian's Chromium, and a page signed in through the dev form as
 * `sam` (security: audit, approve, edit policies). See test/e2e/replay-ui.test.ts for the same
 * setup written out.
 */
export const UI_ROLES = `roles:
  - name: admin
    groups: [admins]
    can_request:
      - { targets: ["*"], logins: ["*"], max_duration: 8h }
  - name: security
    groups: [security]
    can_approve: [admin]
    can_audit: true
    can_edit_policies: true
`;
export const UI_RULES = `command_rules:
  - name: no-shutdown
    protocol: ssh
    match: { command: [shutdown, reboot] }
    action: deny
    message: "Shutting targets down is blocked."
`;

export interface UiStack {
  sshd: TestSshd;
  proxy: RunningProxy;
  browser: Browser;
  page: Page;
  base: string;
  /** Page errors and console errors (CSP refusals among them) seen so far. */
  errors: string[];
  token(user: string, groups: string[]): Promise<string>;
  /** A grant for `user` made the way the API does it (request, then another person approves). */
  grant(user: string, target: string, login: string): Promise<void>;
  /** Signs `page` in through the dev form. */
  signIn(page: Page, user: string, groups: string): Promise<void>;
  /** An interactive SSH shell through the proxy (ssh2 client, a pty), with what it has shown so far. */
  shell(user: string): Promise<{ client: Client; stream: ClientChannel; seen: () => string; closed: Promise<void> }>;
  close(): Promise<void>;
}

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export async function startUiStack(): Promise<UiStack> {
  const sshd = await startSshd();
  const dataDir = await mkdtemp(join(tmpdir(), 'pam-ui-'));
  const policiesDir = join(dataDir, 'policies');
  await mkdir(policiesDir);
  await writeFile(join(policiesDir, 'roles.yaml'), UI_ROLES);
  await writeFile(join(policiesDir, 'rules.yaml'), UI_RULES);
  const config = testConfig(dataDir, policiesDir, [
    { name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' },
  ]);
  const proxy = await startProxy(config);
  await proxy.cp.vault.set('web-root', Buffer.from(sshd.userKey));
  const base = `http://127.0.0.1:${proxy.http.port}`;
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  const token = (user: string, groups: string[]) => proxy.cp.dev!.issue(user, groups);
  const stack: UiStack = {
    sshd, proxy, browser, page, base, errors, token,
    async grant(user, target, login) {
      const who = await proxy.cp.identity.verify(await token(user, ['admins']));
      const approver = await proxy.cp.identity.verify(await token('grant-bot', ['security']));
      const req = await proxy.cp.access.request(who, { target, login, durationMs: 3600_000, reason: 'e2e setup' });
      await proxy.cp.access.approve(approver, req.id, 'ok');
    },
    async signIn(p, user, groups) {
      await p.goto(base + '/');
      await p.fill('#dev-user', user);
      await p.fill('#dev-groups', groups);
      await p.fill('#dev-secret', proxy.cp.dev!.signinSecret);
      await p.click('#dev-signin');
      await p.locator('#who .user').waitFor();
    },
    async shell(user) {
      const client = new Client();
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const tok = await token(user, ['admins']);
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        client.once('error', reject);
        client.connect({ host: '127.0.0.1', port: proxy.ssh!.port, username: 'root@web', password: tok, hostVerifier: () => true, readyTimeout: 15_000 });
      });
      const stream = await new Promise<ClientChannel>((resolve, reject) => {
        client.shell({ term: 'xterm-256color', cols: 100, rows: 24 }, (err, ch) => (err ? reject(err) : resolve(ch)));
      });
      let seen = '';
      stream.on('data', (d: Buffer) => { seen += d.toString(); });
      stream.stderr.on('data', (d: Buffer) => { seen += d.toString(); });
      await waitFor(() => seen.includes('#') || seen.includes('$'), 'shell prompt');
      return { client, stream, seen: () => seen, closed };
    },
    async close() {
      await browser.close().catch(() => undefined);
      await proxy.close().catch(() => undefined);
      await sshd.close().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return stack;
}
