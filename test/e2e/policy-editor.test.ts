import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dialog, Page, Route } from 'playwright-core';
import { runOpenSsh, waitFor } from '../helpers/sshd.js';
import { startUiStack, UI_RULES, type UiStack } from '../helpers/ui-stack.js';

/**
 * The security engineer's policy editor (issue 18) in Chromium against a real proxy and sshd:
 * the what-if tester on the unpublished draft with the access check, a publish conflict that no
 * validation can hide and its three-way diff, the unsaved-changes guard, a draft that survives
 * an expired session, and line numbers with the error line marked.
 */

// Screenshots for docs/ only on request (PAM_SCREENSHOTS=1), as in replay-ui.test.ts.
const SHOTS = process.env.PAM_SCREENSHOTS ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots') : join(tmpdir(), 'pam-e2e-shots');
let ui: UiStack;
const rulesFile = () => readFile(join(ui.proxy.cp.config.policiesDir, 'rules.yaml'), 'utf8');
const DRAFT_RULE = '  - name: no-draft-thing\n    protocol: ssh\n    match: { regex: "draft-thing" }\n    action: deny\n    message: "Draft things are denied."\n';

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  ui = await startUiStack();
  await ui.grant('alice', 'web', 'root');
  await ui.signIn(ui.page, 'sam', 'security');
}, 90_000);

afterAll(async () => {
  await ui?.close();
});

/** Answers every dialog on `page` with `accept` and keeps what each said. */
function dialogs(page: Page, accept: boolean): { seen: { type: string; message: string }[]; off: () => void } {
  const seen: { type: string; message: string }[] = [];
  const on = (d: Dialog) => { seen.push({ type: d.type(), message: d.message() }); void (accept ? d.accept() : d.dismiss()); };
  page.on('dialog', on);
  return { seen, off: () => page.off('dialog', on) };
}

async function whatIf(page: Page, user: string, groups: string, command: string) {
  await page.fill('#wi-user', user);
  await page.fill('#wi-groups', groups);
  await page.fill('#wi-text', command);
  const before = await page.locator('#wi-result').innerHTML();
  await page.click('#wi-go');
  await expect.poll(() => page.locator('#wi-result').innerHTML()).not.toBe(before);
  return {
    headline: (await page.locator('#wi-action').textContent())?.trim(),
    draft: (await page.locator('#wi-draft [data-role=outcome]').textContent())?.trim(),
    published: (await page.locator('#wi-published [data-role=outcome]').textContent())?.trim(),
    access: (await page.locator('#wi-draft [data-role=access]').textContent()) ?? '',
  };
}

/** Puts `text` into the editor as typing does (input events). */
async function setEditor(page: Page, text: string) {
  await page.locator('#policy-editor').fill(text);
}

describe('policy editor', () => {
  it('what-if runs on the unpublished draft beside the rules in force, with the access check in plain words', async () => {
    const { page } = ui;
    await page.goto(`${ui.base}/#/policies/rules.yaml`);
    await expect.poll(() => page.locator('#policy-editor').inputValue()).toContain('no-shutdown');
    await setEditor(page, UI_RULES + DRAFT_RULE);
    await page.locator('#valid').waitFor();

    const granted = await whatIf(page, 'alice', 'admins', 'echo draft-thing');
    expect(granted).toMatchObject({ headline: 'deny', draft: 'deny', published: 'allow' });
    expect(granted.access).toContain('holds an active grant for root@web');
    // Nothing was published by testing: the file and the proxy still allow it.
    expect(await rulesFile()).toBe(UI_RULES);
    const tok = await ui.token('alice', ['admins']);
    const at = ['-o', `Port=${ui.proxy.ssh!.port}`, '-o', 'User=root@web', '127.0.0.1'];
    expect((await runOpenSsh('ssh', tok, [...at, 'echo draft-thing'])).stdout).toContain('draft-thing');

    const stranger = await whatIf(page, 'mallory', '', 'echo hello');
    expect(stranger.headline).toBe('no access');
    expect(stranger.published).toBe('no access');
    expect(stranger.access).toContain('mallory could not connect to root@web at all');
    expect(await page.locator('#wi-result').textContent()).not.toContain('allow');

    const asker = await whatIf(page, 'bob', 'admins', 'echo hello');
    expect(asker.headline).toBe('needs a grant');
    expect(asker.access).toContain('Role admin lets them ask for one (up to 8h)');
    expect(await page.locator('#wi-draft [data-role=rules]').textContent()).toContain('allow');
    await whatIf(page, 'mallory', '', 'echo draft-thing');
    await page.screenshot({ path: join(SHOTS, 'policies-what-if.png'), fullPage: true });
  });

  it('shows line numbers and marks the line a validation error points at', async () => {
    const { page } = ui;
    const bad = UI_RULES + '  - name: broken\n    protocol: ssh\n    match: { regex: "(" }\n    action: deny\n';
    await setEditor(page, bad);
    await page.locator('#invalid').waitFor();
    expect(await page.locator('#policy-gutter .ln').count()).toBe(bad.split('\n').length);
    const line = bad.split('\n').findIndex((l) => l.includes('regex: "("')) + 1;
    expect(await page.locator('#policy-gutter .ln.err').textContent()).toBe(`${line}\n`);
    expect(await page.locator('#invalid').textContent()).toContain(`line ${line}:`);
    await setEditor(page, UI_RULES + DRAFT_RULE);
    await page.locator('#valid').waitFor();
    expect(await page.locator('#policy-gutter .ln.err').count()).toBe(0);
  });

  it('a publish racing a validation shows the 409 and a three-way diff against the fresh copy, and the validation never hides it', async () => {
    const { page } = ui;
    // Someone else publishes meanwhile, through the API.
    const other = await ui.token('rita', ['security']);
    const put = await fetch(`${ui.base}/api/v1/policy/files/rules.yaml`, {
      method: 'PUT', headers: { authorization: `Bearer ${other}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: UI_RULES + '  - name: ritas-rule\n    protocol: ssh\n    match: { command: [halt] }\n    action: deny\n', base_sha256: (await sha(UI_RULES)), message: 'rita' }),
    });
    expect(put.status).toBe(200);

    // A validation of the last keystroke is held in flight until the publish has answered.
    let held: Route | undefined;
    await page.route('**/api/v1/policy/validate', (route) => { held = route; });
    await page.locator('#policy-editor').press('Control+End');
    await page.locator('#policy-editor').pressSequentially('\n');
    await waitFor(() => held, 'the validation to be in flight');
    await page.click('#policy-publish');
    await page.locator('#conflict').waitFor();
    await held!.continue();
    await page.unroute('**/api/v1/policy/validate');
    // A later validation round trip after the conflict writes its own line, never over the conflict.
    await page.locator('#policy-editor').pressSequentially('oops: [');
    await page.locator('#invalid').waitFor();
    expect(await page.locator('#conflict').isVisible()).toBe(true);
    expect(await page.locator('#conflict .notice.error').textContent()).toContain('changed since you opened it');
    expect(await page.locator('#conflict').textContent()).toContain('by rita');
    // The three versions: mine, theirs (fresh from the server, not the copy opened earlier), and the result.
    expect(await page.locator('#diff-mine .add').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('no-draft-thing')]));
    expect(await page.locator('#diff-theirs .add').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('ritas-rule')]));
    expect(await page.locator('#diff-result .del').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('ritas-rule')]));
    expect(await rulesFile()).toContain('ritas-rule');
    await page.screenshot({ path: join(SHOTS, 'policies-conflict.png'), fullPage: true });

    // Keep the draft over the new version (after merging rita's rule back in by hand), publish.
    await page.click('#conflict-rebase');
    await setEditor(page, (await rulesFile()) + DRAFT_RULE);
    await page.click('#policy-publish');
    await page.locator('#published').waitFor();
    const now = await rulesFile();
    expect(now).toContain('ritas-rule');
    expect(now).toContain('no-draft-thing');
  });

  it('warns before leaving unsaved edits, in the app and when the page unloads', async () => {
    const { page } = ui;
    await setEditor(page, (await rulesFile()) + '# unsaved\n');
    const stay = dialogs(page, false);
    await page.click('#nav a[data-page=inbox]');
    await expect.poll(() => stay.seen.length).toBe(1);
    stay.off();
    expect(stay.seen[0]!.message).toContain('rules.yaml has unsaved changes');
    expect(page.url()).toContain('#/policies/rules.yaml');
    expect(await page.locator('#policy-editor').inputValue()).toContain('# unsaved');

    const other = await ui.browser.newPage();
    await ui.signIn(other, 'sam', 'security');
    await other.goto(`${ui.base}/#/policies/rules.yaml`);
    await other.locator('#policy-gutter .ln').first().waitFor();
    await other.locator('#policy-editor').click();
    await other.keyboard.type('x');
    const unload = dialogs(other, true);
    await other.goto('about:blank');
    expect(unload.seen.map((d) => d.type)).toEqual(['beforeunload']);
    await other.context().close();
  });

  it('the draft survives an expired session and a sign-out, only for its author, and is gone once published', async () => {
    const { page } = ui;
    await setEditor(page, (await rulesFile()) + '# kept across sign-in\n');
    await page.context().clearCookies();
    await page.click('#wi-go');
    await page.locator('#dev-signin').waitFor();
    await page.fill('#dev-user', 'sam');
    await page.fill('#dev-groups', 'security');
    await page.fill('#dev-secret', ui.proxy.cp.dev!.signinSecret);
    await page.click('#dev-signin');
    await page.locator('#draft-restored').waitFor();
    expect(await page.locator('#policy-editor').inputValue()).toContain('# kept across sign-in');

    const leave = dialogs(page, true);
    await page.click('#who button');
    await page.locator('#dev-signin').waitFor();
    leave.off();
    expect(leave.seen.map((d) => d.type)).toEqual(['confirm']);
    await ui.signIn(page, 'rita', 'security');
    await page.goto(`${ui.base}/#/policies/rules.yaml`);
    await expect.poll(() => page.locator('#policy-editor').inputValue()).toContain('no-draft-thing');
    expect(await page.locator('#policy-editor').inputValue()).not.toContain('# kept across sign-in');
    expect(await page.locator('#draft-restored').count()).toBe(0);

    await page.click('#who button');
    await ui.signIn(page, 'sam', 'security');
    await page.goto(`${ui.base}/#/policies/rules.yaml`);
    await page.locator('#draft-restored').waitFor();
    await page.click('#policy-publish');
    await page.locator('#published').waitFor();
    expect(await rulesFile()).toContain('# kept across sign-in');
    await page.reload();
    await expect.poll(() => page.locator('#policy-editor').inputValue()).toContain('# kept across sign-in');
    expect(await page.locator('#draft-restored').count()).toBe(0);
    expect(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('pam.policy-draft:')))).toEqual([]);
    expect(ui.errors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/.test(e))).toEqual([]);
  });
});

async function sha(s: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(s).digest('hex');
}
