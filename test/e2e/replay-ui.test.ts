import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Client } from 'ssh2';
import pg from 'pg';
import { startProxy, type RunningProxy } from '../../app/serve.js';
import { runOpenSsh, startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { testConfig } from '../helpers/control-plane.js';

/**
 * The replay UI in Debian's Chromium against a real proxy, a real OpenSSH sshd and the machine's
 * PostgreSQL: what an auditor, an approver and a security engineer do, checked on the page and
 * at the target.
 */

// Screenshots for docs/ are refreshed only on request (PAM_SCREENSHOTS=1 npx vitest run test/e2e),
// so a plain `npm test` leaves the work tree clean.
const SHOTS = process.env.PAM_SCREENSHOTS ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots') : join(tmpdir(), 'pam-e2e-shots');
const ROLE = `pamui_${process.pid}`;
const PW = `pw-${process.pid}-x`;

const ROLES = `roles:
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
const RULES = `# Command rules edited in the e2e test.
command_rules:
  - name: no-shutdown
    protocol: ssh
    match: { command: [shutdown, reboot] }
    action: deny
    message: "Shutting targets down is blocked."
`;

let sshd: TestSshd;
let proxy: RunningProxy;
let dataDir: string;
let browser: Browser;
let page: Page;
let base: string;
const dialogs: string[] = [];

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const admin = (sql: string) => run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-Atc', sql]);

async function token(user: string, groups: string[]): Promise<string> {
  return proxy.cp.dev!.issue(user, groups);
}

/** A grant for `user` made the way the API does it (request, then another person approves). */
async function grant(user: string, target: string, login: string): Promise<void> {
  const who = await proxy.cp.identity.verify(await token(user, ['admins']));
  const approver = await proxy.cp.identity.verify(await token('grant-bot', ['security']));
  const req = await proxy.cp.access.request(who, { target, login, durationMs: 3600_000, reason: 'e2e setup' });
  await proxy.cp.access.approve(approver, req.id, 'ok');
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  sshd = await startSshd();
  await admin(`DROP ROLE IF EXISTS ${ROLE}`);
  await admin(`SET password_encryption='scram-sha-256'; CREATE ROLE ${ROLE} LOGIN PASSWORD '${PW}'`);
  dataDir = await mkdtemp(join(tmpdir(), 'pam-e2e-'));
  const policiesDir = join(dataDir, 'policies');
  await mkdir(policiesDir);
  await writeFile(join(policiesDir, 'roles.yaml'), ROLES);
  await writeFile(join(policiesDir, 'rules.yaml'), RULES);
  const config = testConfig(dataDir, policiesDir, [
    { name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' },
    { name: 'db', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'prefer', logins: { [ROLE]: { secret: 'db-pw' } }, defaultAction: 'allow' },
  ]);
  proxy = await startProxy(config);
  await proxy.cp.vault.set('web-root', Buffer.from(sshd.userKey));
  await proxy.cp.vault.set('db-pw', Buffer.from(PW));
  await grant('alice', 'web', 'root');
  base = `http://127.0.0.1:${proxy.http.port}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss(); });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await sshd?.close();
  await admin(`DROP ROLE IF EXISTS ${ROLE}`).catch(() => undefined);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('replay UI in Chromium', () => {
  it('signs in with the dev form', async () => {
    await page.goto(base + '/');
    await page.locator('#dev-user').waitFor();
    await shot('signin');
    await page.fill('#dev-user', 'sam');
    await page.fill('#dev-groups', 'security');
    await page.fill('#dev-secret', proxy.cp.dev!.signinSecret);
    await page.click('#dev-signin');
    await page.locator('#nav a[data-page=sessions]').waitFor();
    expect(await page.locator('#who').textContent()).toContain('sam');
  });

  it('finds a session by a word it printed, replays it, jumps to a marker, and renders hostile output as text', async () => {
    const tok = await token('alice', ['admins']);
    const cmd = `echo zebra$((40+2))word; printf '%s\\n' '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'; printf '\\033[31mred\\033[0m \\033]0;evil-title\\007\\n'; sleep 1.2; echo second-part-done`;
    const r = await runOpenSsh('ssh', tok, ['-tt', '-o', `Port=${proxy.ssh!.port}`, '-o', 'User=root@web', '127.0.0.1', cmd]);
    expect(r.stdout).toContain('zebra42word');
    await waitFor(async () => (await proxy.cp.recordings.list()).find((m) => m.protocol === 'ssh' && m.status === 'ended'), 'sealed recording');

    await page.goto(base + '/#/sessions');
    await page.fill('#search', 'zebra42word');
    await page.click('#search-go');
    const hit = page.locator('li.hit', { hasText: 'output' }).first();
    await hit.waitFor();
    await shot('sessions-search');
    await hit.locator('a.hit-link').click();

    const term = page.locator('#player .ap-term');
    await expect.poll(async () => (await term.textContent()) ?? '', { timeout: 10_000 }).toContain('zebra42word');

    // Jump to the last marker (exit status): the screen then shows what came after the sleep.
    const markers = page.locator('#markers button.marker');
    const labels = await page.locator('#markers li').allTextContents();
    expect(labels.some((l) => l.includes('exec: echo zebra'))).toBe(true);
    const exitIdx = labels.findIndex((l) => l.includes('exit status'));
    expect(exitIdx).toBeGreaterThanOrEqual(0);
    await markers.nth(exitIdx).click();
    await expect.poll(async () => (await term.textContent()) ?? '', { timeout: 10_000 }).toContain('second-part-done');
    // Hostile output is text on the screen, never markup in the page.
    await expect.poll(async () => (await term.textContent()) ?? '', { timeout: 10_000 }).toContain('<script>window.__pwned=1</script>');
    expect(await page.locator('#player script, #player img').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.title()).toBe('pam-proxy');
    await shot('replay-ssh');
    // The keystroke track toggles.
    await page.click('#keys-toggle');
    expect(await page.locator('#typed-panel').isHidden()).toBe(true);
    await page.click('#keys-toggle');

    // The snippet in search results shows the markup as text too.
    await page.goto(base + '/#/sessions');
    await page.fill('#search', '__pwned');
    await page.click('#search-go');
    await page.locator('li.hit pre.snippet').first().waitFor();
    expect(await page.locator('li.hit pre.snippet').first().textContent()).toContain('<script>');
    expect(await page.locator('#results script, #results img').count()).toBe(0);
    expect(dialogs).toEqual([]);
    const audit = await proxy.cp.audit.read();
    expect(audit.some((e) => e.type === 'recording.open' && e.actor === 'sam')).toBe(true);
  });

  it('replays a raw (no pty) recording and shows its bytes: size, SHA-256 and hex head per stream', async () => {
    const tok = await token('alice', ['admins']);
    const content = Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0x41]), Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 31) % 256))]);
    const file = join(sshd.dir, 'e2e-binary.bin');
    await writeFile(file, content);
    const r = await runOpenSsh('ssh', tok, ['-o', `Port=${proxy.ssh!.port}`, '-o', 'User=root@web', '127.0.0.1', `cat ${file} >/dev/null; cat ${file}; echo plain-text-on-stderr >&2`]);
    expect(r.code).toBe(0);
    const meta = await waitFor(async () => (await proxy.cp.recordings.list()).find((m) => m.format === 'raw' && m.status === 'ended'), 'sealed raw recording');
    await page.goto(`${base}/#/recording/${meta.id}`);
    const view = page.locator('#byte-view');
    await view.waitFor();
    const { createHash } = await import('node:crypto');
    const row = page.locator('#streams tr', { hasText: 'stdout' });
    await expect.poll(async () => (await row.first().textContent()) ?? '').toContain(createHash('sha256').update(content).digest('hex'));
    expect(await row.first().textContent()).toContain('binary');
    expect(await page.locator('pre.hexdump').first().textContent()).toContain('00000000  00 01 02 ff 41');
    // The player replays the text stream; the binary one is a note, not garbage (at the exit marker: all of it).
    const labels = await page.locator('#markers li').allTextContents();
    await page.locator('#markers button.marker').nth(labels.findIndex((l) => l.includes('exit status'))).click();
    const term = page.locator('#player .ap-term');
    await expect.poll(async () => (await term.textContent()) ?? '', { timeout: 10_000 }).toContain('plain-text-on-stderr');
    expect(await term.textContent()).toContain('binary stdout');
    // Its download gives the exact bytes.
    const href = await page.locator('#streams a.dl').first().getAttribute('href');
    const got = Buffer.from(await page.evaluate(async (u) => Array.from(new Uint8Array(await (await fetch(u!)).arrayBuffer())), href));
    expect(got.equals(content)).toBe(true);
    await shot('replay-raw');
  });

  it('watches a live SSH session show a typed command, then terminates it and the client is disconnected', async () => {
    const client = new Client();
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const tok = await token('alice', ['admins']);
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({ host: '127.0.0.1', port: proxy.ssh!.port, username: 'root@web', password: tok, hostVerifier: () => true, readyTimeout: 15_000 });
    });
    const stream = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => {
      client.shell({ term: 'xterm-256color', cols: 100, rows: 24 }, (err, ch) => (err ? reject(err) : resolve(ch)));
    });
    let seen = '';
    stream.on('data', (d: Buffer) => { seen += d.toString(); });
    stream.stderr.on('data', (d: Buffer) => { seen += d.toString(); });
    const live = await waitFor(() => proxy.cp.sessions.list().find((s) => s.protocol === 'ssh'), 'live ssh session');

    await page.goto(base + '/#/live');
    await page.locator(`tr[data-session="${live.id}"] a.watch`).click();
    await page.locator('#live-view .xterm-rows').waitFor();
    await waitFor(() => seen.includes('#') || seen.includes('$'), 'shell prompt');
    stream.write('echo live-$((3*5))-typed\r');
    const rows = page.locator('#live-view .xterm-rows');
    await expect.poll(async () => (await rows.textContent()) ?? '', { timeout: 10_000 }).toContain('live-15-typed');
    expect((await rows.textContent()) ?? '').toContain('echo live-$((3*5))-typed');
    await shot('live-ssh');

    await page.fill('#kill-reason', 'e2e: suspicious activity');
    await page.click('#kill');
    await page.locator('#kill-done').waitFor();
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('client was not disconnected')), 5000))]);
    expect(seen).toContain('e2e: suspicious activity');
    await expect.poll(async () => page.locator('#live-state').textContent(), { timeout: 5000 }).toMatch(/ended|disconnected/);
    const audit = await proxy.cp.audit.read();
    expect(audit.some((e) => e.type === 'session.kill' && e.actor === 'sam' && e.reason === 'e2e: suspicious activity')).toBe(true);
  });

  it('approves an access request in the inbox, and the requester connects with it', async () => {
    const dana = await token('dana', ['admins']);
    const res = await fetch(`${base}/api/v1/requests`, {
      method: 'POST', headers: { authorization: `Bearer ${dana}`, 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'db', login: ROLE, duration: '30m', reason: 'INC-7: check <b>orders</b>' }),
    });
    expect(res.status).toBe(201);
    const req = (await res.json()) as { id: string };
    const before = await run('psql', [`host=127.0.0.1 port=${proxy.postgres!.port} user=${ROLE} dbname=db sslmode=require`, '-Atc', 'select 1'], { PGPASSWORD: dana });
    expect(before.code).not.toBe(0);

    await page.goto(base + '/#/inbox');
    const row = page.locator(`tr[data-request="${req.id}"]`);
    await row.waitFor();
    expect(await row.locator('.reason-text').textContent()).toBe('INC-7: check <b>orders</b>');
    await shot('inbox');
    await row.locator('input.reason').fill('ok for INC-7');
    await row.locator('button.approve').click();
    await row.locator('.ok').waitFor();

    const after = await run('psql', [`host=127.0.0.1 port=${proxy.postgres!.port} user=${ROLE} dbname=db sslmode=require`, '-Atc', "select 'pg-' || (40+2) as answer"], { PGPASSWORD: dana });
    expect(after.stdout.trim()).toBe('pg-42');

    // The Postgres session page shows the statement as a timeline row.
    const rec = await waitFor(async () => (await proxy.cp.recordings.list()).find((m) => m.protocol === 'postgres' && m.status === 'ended'), 'pg recording');
    await page.goto(`${base}/#/recording/${rec.id}`);
    const sqlRow = page.locator('#statements tbody tr', { hasText: "select 'pg-'" });
    await sqlRow.waitFor();
    expect(await sqlRow.textContent()).toContain('SELECT 1');
    await shot('postgres-statements');
  });

  it('denies a held statement from the inbox with a reason, and the waiting session learns it', async () => {
    const dana = await proxy.cp.identity.verify(await token('dana', ['admins']));
    const hold = await proxy.cp.holds.create(dana, { kind: 'sql', protocol: 'postgres', target: 'db', login: ROLE, text: "DELETE FROM orders -- <img src=x onerror=alert(1)>", rule: 'bulk-change-needs-approval', message: 'UPDATE/DELETE without WHERE needs approval.' }, 60_000);
    const decided = proxy.cp.holds.wait(hold.id);
    await page.goto(base + '/#/inbox');
    const row = page.locator(`tr[data-hold="${hold.id}"]`);
    await row.waitFor();
    expect(await row.locator('pre.sql').textContent()).toBe('DELETE FROM orders -- <img src=x onerror=alert(1)>');
    await row.locator('button.deny').click();
    await row.locator('.notice.error').waitFor();
    await row.locator('input.reason').fill('use a WHERE clause');
    await row.locator('button.deny').click();
    expect(await decided).toBe('denied');
    expect(dialogs).toEqual([]);
  });

  it('shows running Postgres statements live as they arrive', async () => {
    const dana = await token('dana', ['admins']);
    const client = new pg.Client({ host: '127.0.0.1', port: proxy.postgres!.port, user: ROLE, database: 'db', password: dana, ssl: { rejectUnauthorized: false } });
    await client.connect();
    try {
      const live = await waitFor(() => proxy.cp.sessions.list().find((s) => s.protocol === 'postgres'), 'live pg session');
      await page.goto(`${base}/#/live/${live.id}`);
      await page.locator('#live-statements').waitFor();
      await client.query("select 'live-sql-' || $1::int as x", [7]);
      await page.locator('#live-statements tbody tr', { hasText: 'live-sql-' }).waitFor({ timeout: 5000 });
      await client.query('select pg_sleep(0.05), 2 as y');
      await page.locator('#live-statements tbody tr', { hasText: 'pg_sleep' }).waitFor({ timeout: 5000 });
      await shot('live-postgres');
    } finally {
      await client.end();
    }
  });

  it('edits a rule with validation as you type, publishes it, and the proxy enforces it on a new command', async () => {
    const tok = await token('alice', ['admins']);
    const at = ['-o', `Port=${proxy.ssh!.port}`, '-o', 'User=root@web', '127.0.0.1'];
    expect((await runOpenSsh('ssh', tok, [...at, 'echo forbidden-thing'])).stdout).toContain('forbidden-thing');

    await page.goto(base + '/#/policies/rules.yaml');
    const editor = page.locator('#policy-editor');
    await expect.poll(() => editor.inputValue()).toContain('no-shutdown');
    await editor.fill(RULES + '  - name: bad\n    protocol: ssh\n    match: { regex: "(" }\n    action: deny\n');
    await page.locator('#invalid').waitFor();
    expect(await page.locator('#invalid').textContent()).toContain('command_rules[1]');
    await editor.fill(RULES + '  - name: no-forbidden-thing\n    protocol: ssh\n    match: { regex: "forbidden-thing" }\n    action: deny\n    message: "Forbidden things are forbidden."\n');
    await page.locator('#valid').waitFor();
    await page.click('#policy-diff');
    expect(await page.locator('#diff .add').first().textContent()).toContain('no-forbidden-thing');
    await page.fill('#policy-message', 'block forbidden-thing (e2e)');
    await page.click('#policy-publish');
    await page.locator('#published').waitFor();
    await page.locator('#policy-history li', { hasText: 'sam' }).waitFor();

    const denied = await waitFor(async () => {
      const r = await runOpenSsh('ssh', tok, [...at, 'echo forbidden-thing']);
      return r.code !== 0 ? r : undefined;
    }, 'the new rule to be enforced', 40);
    expect(denied.stdout).not.toContain('forbidden-thing');
    expect(denied.stderr).toContain('Forbidden things are forbidden.');

    await page.fill('#wi-text', 'echo forbidden-thing');
    await page.click('#wi-go');
    await expect.poll(() => page.locator('#wi-action').textContent()).toBe('deny');
    await shot('policies');
    const audit = await proxy.cp.audit.read();
    expect(audit.some((e) => e.type === 'policy.publish' && e.actor === 'sam' && e.file === 'rules.yaml')).toBe(true);
  });

  // The issue's "under 2 s" is measured in BENCHMARKS.md-style runs, not asserted (tests never
  // assert on wall-clock time); what this test asserts is the mechanism that makes it fast: the
  // browser gets windows of the recording, never the whole 50 MB file.
  it('opens a one-hour 50 MB recording at a search hit and seeks to a far marker, loading only windows', async () => {
    const { meta, path } = await proxy.cp.recordings.create({ protocol: 'ssh', user: 'erin', subject: 'erin', login: 'root', target: 'web', format: 'asciicast' });
    const parts: string[] = [JSON.stringify({ version: 2, width: 100, height: 30, timestamp: Math.floor(Date.now() / 1000), env: {}, title: 'busy' })];
    const filler = 'x'.repeat(50);
    for (let i = 0; i < 600_000; i++) {
      const t = (i * 3600) / 600_000;
      parts.push(JSON.stringify([Number(t.toFixed(6)), 'o', `\u001b[32m${i}\u001b[0m ${filler}\r\n`]));
      if (i % 10_000 === 0) parts.push(JSON.stringify([Number(t.toFixed(6)), 'm', `exec: step ${i / 10_000}`]));
      if (i === 450_000) parts.push(JSON.stringify([Number(t.toFixed(6)), 'o', 'needle-in-hour-three\r\n']));
      if (i === 590_000) parts.push(JSON.stringify([Number(t.toFixed(6)), 'o', 'near-the-end\r\n']));
    }
    const body = parts.join('\n') + '\n';
    await writeFile(path, body);
    await proxy.cp.recordings.update(meta.id, { status: 'ended', end: new Date(Date.now() + 3600_000).toISOString(), bytes: Buffer.byteLength(body) });
    expect(Buffer.byteLength(body)).toBeGreaterThan(50_000_000);

    let castBytes = 0;
    const onResponse = async (res: import('playwright-core').Response) => {
      if (res.url().includes(`/recordings/${meta.id}/cast`)) castBytes += (await res.body().catch(() => Buffer.alloc(0))).length;
    };
    page.on('response', onResponse);
    let t0 = Date.now();
    await page.goto(`${base}/#/recording/${meta.id}?t=2700.001`);
    const term = page.locator('#player .ap-term');
    await expect.poll(async () => (await term.textContent()) ?? '', { timeout: 10_000, interval: 50 }).toContain('needle-in-hour-three');
    const opened = Date.now() - t0;
    await shot('replay-large');
    // Jump to the marker near the end (step 59 at 3540 s): a new window with a keyframe.
    t0 = Date.now();
    const labels = await page.locator('#markers li').allTextContents();
    await page.locator('#markers button.marker').nth(labels.findIndex((l) => l.includes('step 59'))).click();
    await expect.poll(async () => (await term.textContent()) ?? '', { timeout: 10_000, interval: 50 }).toContain('near-the-end');
    const sought = Date.now() - t0;
    page.off('response', onResponse);
    console.log(`large recording: opened in ${opened} ms, marker seek in ${sought} ms, ${castBytes} bytes of cast loaded`);
    expect(castBytes).toBeGreaterThan(0);
    expect(castBytes).toBeLessThan(12_000_000);
  });

  it('filters the session list (protocol, has denials) and lists every kind of session', async () => {
    await page.goto(base + '/#/sessions');
    await page.locator('#sessions tbody tr').first().waitFor();
    await shot('sessions');
    const all = await page.locator('#sessions tbody tr').count();
    await page.check('input[name=denials]');
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBeLessThan(all);
    const rows = await page.locator('#sessions tbody tr').allTextContents();
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.includes('alice'))).toBe(true);
    await page.uncheck('input[name=denials]');
    await page.selectOption('select[name=protocol]', 'postgres');
    await expect.poll(async () => (await page.locator('#sessions tbody tr').allTextContents()).every((r) => r.includes('postgres'))).toBe(true);
  });

  it('refuses what a role does not allow, a change without the CSRF token, and ids that are not ids', async () => {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(base + '/');
    await p.fill('#dev-user', 'bob');
    await p.fill('#dev-groups', 'admins');
    await p.fill('#dev-secret', proxy.cp.dev!.signinSecret);
    await p.click('#dev-signin');
    await p.locator('.notice.error').waitFor();
    const status = (path: string, init?: RequestInit) => p.evaluate(async ([u, i]) => (await fetch(u as string, i as RequestInit)).status, [path, init ?? {}] as const);
    expect(await status('/api/v1/ui/sessions')).toBe(403);
    expect(await status('/api/v1/policy/files')).toBe(403);
    expect(await status('/api/v1/ui/recordings/..%2f..%2fetc%2fpasswd')).toBe(403);
    await ctx.close();
    // sam's cookie without the token: refused; with a bad id: 404.
    expect(await page.evaluate(async () => (await fetch('/api/v1/sessions/x/kill', { method: 'POST' })).status)).toBe(403);
    expect(await page.evaluate(async () => (await fetch('/api/v1/ui/recordings/..%2f..%2fetc%2fpasswd')).status)).toBe(404);
    expect(await page.evaluate(async () => (await fetch('/api/v1/ui/recordings/zz/cast')).status)).toBe(404);
  });

  it('search pages through the index: 50 hits, then Next shows the rest, each a command event with its rule', async () => {
    const tok = await token('alice', ['admins']);
    // `ssh -T` with a script on stdin: the stdin gate judges each line, one command event each.
    const script = Array.from({ length: 60 }, (_v, i) => `echo pagerword-${i}`).join('\n') + '\nexit\n';
    const r = await runOpenSsh('ssh', tok, ['-T', '-o', `Port=${proxy.ssh!.port}`, '-o', 'User=root@web', '127.0.0.1'], script);
    expect(r.stdout).toContain('pagerword-59');
    await waitFor(async () => {
      const res = await fetch(`${base}/api/v1/search?q=pagerword&kind=command&limit=100`, { headers: { authorization: `Bearer ${await token('sam', ['security'])}` } });
      return res.ok && ((await res.json()) as { hits: unknown[] }).hits.length === 60;
    }, 'indexed', 1200);
    await page.goto(base + '/#/sessions');
    await page.fill('#search', 'pagerword');
    await page.selectOption('#search-kind', 'command');
    await page.click('#search-go');
    await expect.poll(async () => page.locator('li.hit').count(), { timeout: 10_000 }).toBe(50);
    const texts = await page.locator('li.hit pre.snippet').allTextContents();
    await page.click('#search-next');
    await page.locator('#search-pager[data-page="2"]').waitFor();
    expect(await page.locator('li.hit').count()).toBe(10);
    expect(await page.locator('#search-next').isDisabled()).toBe(true);
    expect(await page.locator('#search-page').textContent()).toContain('hits 51–60 · last page');
    texts.push(...await page.locator('li.hit pre.snippet').allTextContents());
    expect(new Set(texts).size).toBe(60);
    expect(await page.locator('li.hit .badge.verdict').first().textContent()).toMatch(/^allow \(/);
  });
});
