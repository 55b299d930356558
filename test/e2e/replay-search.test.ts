import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { runOpenSsh, waitFor } from '../helpers/sshd.js';
import { startUiStack, type UiStack } from '../helpers/ui-stack.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';

/**
 * Issue 18, in Chromium against a real proxy and sshd: the proxy's own denial line is in the
 * replayed screen at its moment and its marker seeks there; search uses the filters beside it,
 * lives in the URL (reload, back, a shared link), groups the hits of one typed command into one
 * result and highlights the match in the results and in the replay; the sessions list shows an
 * exec's command, every ended session's end reason and a live session's size so far.
 */

const SHOTS = process.env.PAM_SCREENSHOTS ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots') : join(tmpdir(), 'pam-e2e-shots');
const DENIED = '[pam] denied: Shutting targets down is blocked.';
let ui: UiStack;
let rec: RecordingMeta;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  ui = await startUiStack();
  await ui.grant('alice', 'web', 'root');
  await ui.signIn(ui.page, 'sam', 'security');
  const sh = await ui.shell('alice');
  const type = async (line: string, expectSeen: string) => {
    sh.stream.write(line + '\r');
    await waitFor(() => sh.seen().includes(expectSeen), expectSeen);
  };
  await type('echo first-$((1+1))', 'first-2');
  await sleep(3000);
  await type('shutdown -h now', DENIED);
  await sleep(3000);
  await type('echo second-$((2+2))', 'second-4');
  await sleep(1000);
  sh.stream.write('exit\r');
  await new Promise<void>((resolve) => sh.stream.once('close', () => resolve()));
  sh.client.end();
  await sh.closed;
  rec = await waitFor(async () => (await ui.proxy.cp.recordings.list()).find((m) => m.protocol === 'ssh' && m.status === 'ended'), 'sealed recording');
  // Searchable once the index has caught up with the sealed file.
  await waitFor(async () => (await ui.proxy.index!.search({ match: '"shutdown"', recording: rec.id, limit: 10 })).hits.length >= 3, 'indexed');
}, 90_000);

afterAll(async () => {
  await ui?.close();
});

const screen = async () => ((await ui.page.locator('#player .ap-term').textContent()) ?? '').replace(/\u00a0/g, ' ');

describe('the proxy\'s own lines in the replay', () => {
  it('the denial the user saw is on the replayed screen at its moment; its marker seeks there', async () => {
    const { page } = ui;
    await page.goto(`${ui.base}/#/recording/${rec.id}`);
    await page.locator('#markers li').first().waitFor();
    const labels = await page.locator('#markers li').allTextContents();
    const i = labels.findIndex((l) => l.includes(DENIED));
    expect(i).toBeGreaterThanOrEqual(0);
    expect(await page.locator('#markers li').nth(i).getAttribute('class')).toContain('deny');
    await page.locator('#markers button.marker').nth(i).click();
    await expect.poll(screen, { timeout: 10_000 }).toContain(DENIED);
    await sleep(500);
    // That moment, not a later one: the next command (3 s later) is not on the screen yet.
    expect(await screen()).not.toContain('second-4');
    await expect.poll(async () => page.locator('#markers li.current').textContent(), { timeout: 5000 }).toContain(DENIED);
    await page.screenshot({ path: join(SHOTS, 'replay-denial.png'), fullPage: true });
  });
});

describe('search', () => {
  const hash = () => decodeURIComponent(new URL(ui.page.url()).hash);
  const results = () => ui.page.locator(`#results section.hit-rec[data-recording="${rec.id}"] li.hit`);

  it('one typed command is one result, its kinds listed and the match highlighted; the search is in the URL', async () => {
    const { page } = ui;
    await page.goto(`${ui.base}/#/sessions`);
    await page.fill('#search', 'shutdown');
    await page.click('#search-go');
    await results().first().waitFor();
    expect(hash()).toBe('#/sessions?q=shutdown');
    // The command event, its echo in the output and its denial marker: one moment, one result.
    expect(await results().count()).toBe(1);
    expect((await results().first().getAttribute('data-kinds'))!.split(',')).toEqual(expect.arrayContaining(['command', 'marker', 'output']));
    const marks = await results().first().locator('pre.snippet mark').allTextContents();
    expect(marks.length).toBeGreaterThanOrEqual(2);
    for (const m of marks) expect(m.toLowerCase()).toBe('shutdown');
    await page.screenshot({ path: join(SHOTS, 'search-grouped.png'), fullPage: true });
  });

  it('the filters beside it narrow it (user, since) and stay in the URL across a reload', async () => {
    const { page } = ui;
    await page.fill('#f-user', 'nobody-here');
    await expect.poll(() => results().count(), { timeout: 10_000 }).toBe(0);
    expect(hash()).toBe('#/sessions?q=shutdown&user=nobody-here');
    await page.reload();
    await page.locator('#results h2').waitFor();
    expect(await page.inputValue('#search')).toBe('shutdown');
    expect(await page.inputValue('#f-user')).toBe('nobody-here');
    expect(await results().count()).toBe(0);
    await page.fill('#f-user', 'ali');
    await expect.poll(() => results().count(), { timeout: 10_000 }).toBe(1);
    // Started after a moment in the future: nothing.
    await page.fill('#f-from', '2999-01-01T00:00');
    await expect.poll(() => results().count(), { timeout: 10_000 }).toBe(0);
    expect(hash()).toContain('from=2999-01-01T00:00');
    await page.fill('#f-from', '');
    await expect.poll(() => results().count(), { timeout: 10_000 }).toBe(1);
  });

  it('kind narrows it; back goes to the search before; a shared link opens the same results', async () => {
    const { page } = ui;
    await page.selectOption('#search-kind', 'command');
    await expect.poll(async () => results().first().getAttribute('data-kinds'), { timeout: 10_000 }).toBe('command');
    expect(hash()).toBe('#/sessions?q=shutdown&kind=command&user=ali');
    await page.goBack();
    await expect.poll(hash).toBe('#/sessions?q=shutdown&user=ali');
    await expect.poll(async () => (await results().first().getAttribute('data-kinds')) ?? '', { timeout: 10_000 }).toContain('output');
    expect(await page.inputValue('#search-kind')).toBe('');
    const shared = await ui.browser.newContext({ viewport: { width: 1400, height: 900 } });
    const other = await shared.newPage();
    await ui.signIn(other, 'sam', 'security');
    await other.goto(page.url());
    await other.locator(`#results section.hit-rec[data-recording="${rec.id}"] li.hit`).first().waitFor();
    expect(await other.inputValue('#f-user')).toBe('ali');
    await shared.close();
  });

  it('a result opens the replay at its moment with the match highlighted on the screen and in the panels', async () => {
    const { page } = ui;
    await page.goto(`${ui.base}/#/sessions?q=shutdown`);
    await results().first().locator('a.hit-link').click();
    await page.locator('#search-term').waitFor();
    await expect.poll(screen, { timeout: 10_000 }).toContain('shutdown -h now');
    expect(await screen()).not.toContain('second-4');
    await expect.poll(async () => Number(await page.locator('#player').getAttribute('data-matches')), { timeout: 10_000 }).toBeGreaterThan(0);
    const lit = await page.evaluate(() => {
      const hl = (CSS.highlights as unknown as Map<string, Set<Range>>).get('search-hit');
      return hl ? [...hl].map((r) => r.toString()) : [];
    });
    expect(lit.length).toBeGreaterThan(0);
    for (const t of lit) expect(t.toLowerCase()).toBe('shutdown');
    expect(await page.locator('#markers li.match mark').first().textContent()).toBe('shutdown');
    expect(await page.locator('#typed li.match').count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(SHOTS, 'replay-search-hit.png'), fullPage: true });
  });
});

describe('the sessions list', () => {
  it('an exec session shows its command, an ended one its end reason, a live one its size so far', async () => {
    const { page } = ui;
    const tok = await ui.token('alice', ['admins']);
    const r = await runOpenSsh('ssh', tok, ['-o', `Port=${ui.proxy.ssh!.port}`, '-o', 'User=root@web', '127.0.0.1', 'echo exec-column-$((3*3))']);
    expect(r.stdout).toBe('exec-column-9\n');
    const exec = await waitFor(async () => (await ui.proxy.cp.recordings.list()).find((m) => m.format === 'raw' && m.status === 'ended'), 'exec recording');
    const sh = await ui.shell('alice');
    sh.stream.write('seq 1 400\r');
    await waitFor(() => sh.seen().includes('400'), 'output');
    const live = await waitFor(() => ui.proxy.cp.sessions.list().find((s) => s.protocol === 'ssh'), 'live session');
    await page.goto(`${ui.base}/#/sessions`);
    const execRow = page.locator(`#sessions tr[data-recording="${exec.id}"]`);
    await expect.poll(async () => execRow.locator('td.exec').textContent(), { timeout: 15_000 }).toBe('echo exec-column-$((3*3))');
    expect(((await execRow.locator('td.end-reason').textContent()) ?? '').length).toBeGreaterThan(0);
    expect(await page.locator(`#sessions tr[data-recording="${rec.id}"] td.end-reason`).textContent()).toBe(rec.endReason);
    expect(await page.locator(`#sessions tr[data-recording="${rec.id}"] td.exec`).textContent()).toBe('');
    const liveRow = page.locator(`#sessions tr[data-recording="${live.recordingId}"]`);
    await liveRow.waitFor();
    expect(await liveRow.locator('td.end-reason').textContent()).toBe('');
    await expect.poll(async () => liveRow.locator('td.size').textContent(), { timeout: 10_000 }).not.toBe('0 B');
    await page.screenshot({ path: join(SHOTS, 'sessions-columns.png'), fullPage: true });
    sh.client.end();
    await sh.closed;
  });
});
