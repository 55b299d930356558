import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/sshd.js';
import { startUiStack, UI_RULES, type UiStack } from '../helpers/ui-stack.js';

/**
 * The approver's Inbox (issue 18) in Chromium against a real proxy and sshd: a command held in
 * a real SSH session shows its session (watch live), how long it has waited, the requester's
 * context (grants, sessions, the session's recent commands); an access request is approved for
 * less time than asked; decided items stay in the history; the navigation counts what waits.
 */

// Screenshots for docs/ only on request (PAM_SCREENSHOTS=1), as in replay-ui.test.ts.
const SHOTS = process.env.PAM_SCREENSHOTS ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots') : join(tmpdir(), 'pam-e2e-shots');
let ui: UiStack;
const REVIEW = UI_RULES + '  - name: held-needs-review\n    protocol: ssh\n    match: { regex: "held-" }\n    action: review\n    message: "Needs a second pair of eyes."\n';

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  ui = await startUiStack();
  await writeFile(join(ui.proxy.cp.config.policiesDir, 'rules.yaml'), REVIEW);
  await waitFor(() => ui.proxy.cp.policy.rules().rules.some((r) => r.name === 'held-needs-review'), 'the review rule to load');
  await ui.grant('alice', 'web', 'root');
  await ui.signIn(ui.page, 'sam', 'security');
}, 90_000);

afterAll(async () => {
  await ui?.close();
});

const api = async (path: string, token: string, body?: unknown) => {
  const res = await fetch(ui.base + path, { method: body ? 'POST' : 'GET', headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, body: (await res.json()) as any };
};

describe('Inbox', () => {
  it('a held command shows its live session, its waiting time and the requester\'s context; approving lets it run; it stays in the history', async () => {
    const { page } = ui;
    const sh = await ui.shell('alice');
    sh.stream.write('echo before-$((20+1))\r');
    await waitFor(() => sh.seen().includes('before-21'), 'the first command');
    sh.stream.write('echo held-$((6*7))\r');
    const sam = await ui.token('sam', ['security']);
    const hold = await waitFor(async () => (await ui.proxy.cp.holds.list(await ui.proxy.cp.identity.verify(sam))).find((x) => x.status === 'pending'), 'the hold');
    expect(hold.sessionId).toBeTruthy();
    expect(sh.seen()).not.toContain('held-42');

    await page.goto(`${ui.base}/#/inbox`);
    const row = page.locator(`tr[data-hold="${hold.id}"]`);
    await row.waitFor();
    expect(await row.locator('pre.sql').textContent()).toBe('echo held-$((6*7))');
    expect(await row.locator('a.watch').getAttribute('href')).toBe(`#/live/${hold.sessionId}`);
    expect(await row.locator('.waited').textContent()).toMatch(/^waiting \d+ (s|min)/);
    expect(await row.locator('.ctx-grants').textContent()).toContain('root@web');
    expect(await row.locator('.ctx-sessions').textContent()).toContain('live');
    // The session's earlier command, from the live index (it may take a refresh to arrive).
    await expect.poll(async () => (await row.locator('.ctx-commands').textContent()) ?? '', { timeout: 30_000 }).toContain('echo before-$((20+1))');
    await expect.poll(() => page.locator('#inbox-count').textContent()).toBe('1');
    await page.screenshot({ path: join(SHOTS, 'inbox-hold.png'), fullPage: true });

    // The watch link opens the live view of that session.
    await row.locator('a.watch').click();
    await page.locator('#live-state').waitFor();
    expect(page.url()).toContain(`#/live/${hold.sessionId}`);
    await page.goto(`${ui.base}/#/inbox`);
    await row.locator('input.reason').fill('looks fine');
    await row.locator('button.approve').click();
    await waitFor(() => sh.seen().includes('held-42'), 'the approved command to run');
    const done = page.locator(`#history tr[data-decided="${hold.id}"]`);
    await done.waitFor();
    expect(await done.locator('.badge.outcome').textContent()).toBe('approved');
    expect(await done.locator('.decided-by').textContent()).toBe('sam');
    expect(await done.textContent()).toContain('looks fine');
    await expect.poll(() => page.locator('#inbox-count').isHidden()).toBe(true);
    sh.client.end();
    await sh.closed;
  });

  it('approves an access request for less time than asked; the grant is that short; the history says so', async () => {
    const { page } = ui;
    const dana = await ui.token('dana', ['admins']);
    const req = await api('/api/v1/requests', dana, { target: 'web', login: 'root', duration: '2h', reason: 'INC-9 disk full' });
    expect(req.status).toBe(201);
    await page.goto(`${ui.base}/#/inbox`);
    const row = page.locator(`tr[data-request="${req.body.id}"]`);
    await row.waitFor();
    expect(await row.locator('.ctx-grants').textContent()).toContain('No active grants');
    await expect.poll(() => page.locator('#inbox-count').textContent()).toBe('1');
    expect(await row.locator('select.duration option').allTextContents()).toEqual(['2 h (as asked)', '1 h', '30 min', '15 min']);
    await row.locator('select.duration').selectOption('30m');
    await row.locator('button.approve').click();
    await row.locator('.ok').waitFor();
    const sam = await ui.token('sam', ['security']);
    const grant = (await api('/api/v1/grants', sam)).body.find((g: any) => g.user === 'dana');
    expect(grant.expiresAt - grant.startsAt).toBe(30 * 60_000);
    const done = page.locator(`#history tr[data-decided="${req.body.id}"]`);
    await done.waitFor();
    expect(await done.locator('.granted').textContent()).toBe('granted 30 min of 2 h asked');
    const audit = await ui.proxy.cp.audit.read();
    expect(audit.find((e) => e.type === 'approve' && e.request === req.body.id)).toMatchObject({ actor: 'sam', duration: '30m', asked: '2h' });
  });

  it('a hold nobody decided in time is in the history as timed out', async () => {
    const { page } = ui;
    const erin = await ui.proxy.cp.identity.verify(await ui.token('erin', ['admins']));
    const hold = await ui.proxy.cp.holds.create(erin, { kind: 'command', protocol: 'ssh', target: 'web', login: 'root', text: 'echo held-late' }, 1);
    expect(await ui.proxy.cp.holds.wait(hold.id)).toBe('expired');
    await page.goto(`${ui.base}/#/sessions`);
    await page.goto(`${ui.base}/#/inbox`);
    const done = page.locator(`#history tr[data-decided="${hold.id}"]`);
    await done.waitFor();
    expect(await done.locator('.badge.outcome').textContent()).toBe('expired');
    expect(await done.locator('.decided-by').textContent()).toBe('nobody (timed out)');
    expect(await page.locator(`tr[data-hold="${hold.id}"]`).count()).toBe(0);
    expect(ui.errors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/.test(e))).toEqual([]);
  });
});
