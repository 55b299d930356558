import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startUiStack, type UiStack } from '../helpers/ui-stack.js';
import { waitFor } from '../helpers/sshd.js';

/**
 * Issue 15, in Chromium against a real proxy: the sessions list and the search results page with
 * the API's cursor. 60 recordings written through the catalog's own writer (two users, two
 * targets), 12 rows a page (`limit=12` in the hash): Next to the last page and Previous back see
 * every recording on disk exactly once, filters stay across pages, and a reload or Back keeps the
 * page, its Previous included.
 */

const SHOTS = process.env.PAM_SCREENSHOTS ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots') : join(tmpdir(), 'pam-e2e-shots');
const N = 60;
const LIMIT = 12;
let ui: UiStack;
/** Recording ids on disk, and those of carol's (every third one). */
let onDisk: string[];
let carols: string[];
let before: string;

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  ui = await startUiStack();
  await ui.signIn(ui.page, 'sam', 'security');
  before = new Date(Date.now() - 2 * 86400_000).toISOString().slice(0, 16); // a datetime-local value, whatever the time zone
  for (let i = 0; i < N; i++) {
    const user = i % 3 === 0 ? 'carol' : 'dave';
    const w = await ui.proxy.cp.recordings.start('asciicast', { user, subject: user, login: 'root', target: i % 2 ? 'web-a' : 'web-b' }, { header: { width: 80, height: 24, env: {}, title: 'paging' } });
    w.output(`$ echo pagingword row-${i}\r\npagingword row-${i}\r\n`);
    await w.close('client disconnected');
  }
  const metas = await ui.proxy.cp.recordings.list();
  onDisk = metas.map((m) => m.id);
  carols = metas.filter((m) => m.user === 'carol').map((m) => m.id);
  expect(onDisk.length).toBe(N);
  expect(carols.length).toBe(N / 3);
  // The index has every session and every printed word.
  await waitFor(async () => (await ui.proxy.index!.sessions({ limit: 500 })).sessions.length === N
    && (await ui.proxy.index!.search({ match: '"pagingword"', kinds: ['output'], limit: 200 })).hits.length === N, 'indexed', 1200);
}, 120_000);

afterAll(async () => {
  await ui?.close();
});

const sorted = (a: string[]) => [...a].sort();
const hash = () => decodeURIComponent(new URL(ui.page.url()).hash);

/** One list's rows and its pager: `sessions` (the table) or `search` (the result sections). */
function list(id: 'sessions' | 'search') {
  const rows = id === 'sessions' ? '#sessions tbody tr' : '#results section.hit-rec';
  const ids = async () => ui.page.locator(rows).evaluateAll((els) => els.map((e) => e.getAttribute('data-recording')!));
  const at = async (n: number) => { await ui.page.locator(`#${id}-pager[data-page="${n}"]`).waitFor(); return ids(); };
  const where = async () => (await ui.page.locator(`#${id}-page`).textContent()) ?? '';
  const disabled = (b: 'next' | 'prev' | 'first') => ui.page.locator(`#${id}-${b}`).isDisabled();
  /** From the page shown (page 1) to the last by Next, the ids of each page. */
  const forward = async (): Promise<string[][]> => {
    const pages = [await at(1)];
    while (!(await disabled('next'))) {
      await ui.page.click(`#${id}-next`);
      pages.push(await at(pages.length + 1));
      expect(pages.length).toBeLessThanOrEqual(N);
    }
    return pages;
  };
  /** Previous from the last page back to the first: each page as it was going forward. */
  const back = async (pages: string[][]) => {
    for (let n = pages.length - 1; n >= 1; n--) {
      await ui.page.click(`#${id}-prev`);
      expect(await at(n)).toEqual(pages[n - 1]);
    }
    expect(await disabled('prev')).toBe(true);
    expect(await disabled('first')).toBe(true);
  };
  return { ids, at, where, disabled, forward, back };
}

describe('sessions list pages', () => {
  const s = list('sessions');

  it('Next to the last page sees every recording on disk once; Previous comes back through the same pages', async () => {
    await ui.page.goto(`${ui.base}/#/sessions?limit=${LIMIT}`);
    const pages = await s.forward();
    expect(pages.map((p) => p.length)).toEqual([12, 12, 12, 12, 12]);
    const seen = pages.flat();
    expect(new Set(seen).size).toBe(seen.length);
    expect(sorted(seen)).toEqual(sorted(onDisk));
    // 60 is a whole number of pages: the fifth is the last, with no empty page after it.
    expect(await s.where()).toBe('Page 5 · sessions 49–60 · last page');
    await ui.page.screenshot({ path: join(SHOTS, 'sessions-paging.png'), fullPage: true });
    expect(hash()).toMatch(/^#\/sessions\?cursor=\d+\.[0-9a-z-]+&limit=12$/);
    await s.back(pages);
    expect(hash()).toBe('#/sessions?limit=12');
  });

  it('a reload keeps the page and its Previous; Back goes to the page before', async () => {
    const page1 = await s.at(1);
    await ui.page.click('#sessions-next');
    const page2 = await s.at(2);
    await ui.page.click('#sessions-next');
    const page3 = await s.at(3);
    const at3 = ui.page.url();
    await ui.page.reload();
    expect(await s.at(3)).toEqual(page3);
    expect(ui.page.url()).toBe(at3);
    await ui.page.click('#sessions-prev');
    expect(await s.at(2)).toEqual(page2);
    await ui.page.goBack();
    expect(await s.at(3)).toEqual(page3);
    await ui.page.goBack();
    expect(await s.at(2)).toEqual(page2);
    await ui.page.goBack();
    expect(await s.at(1)).toEqual(page1);
    expect(new Set([...page1, ...page2, ...page3]).size).toBe(3 * LIMIT);
  });

  it('filters stay across pages and reloads, and an edit starts again at page 1', async () => {
    await ui.page.goto(`${ui.base}/#/sessions?limit=${LIMIT}&cursor=${encodeURIComponent('9999999999999.z')}`);
    await ui.page.fill('#f-user', 'carol');
    await ui.page.fill('#f-target', 'web');
    const pages = await s.forward();
    expect(pages.map((p) => p.length)).toEqual([12, 8]);
    expect(sorted(pages.flat())).toEqual(sorted(carols));
    expect(await s.where()).toBe('Page 2 · sessions 13–20 · last page');
    expect(hash()).toMatch(/^#\/sessions\?user=carol&target=web&cursor=.+&limit=12$/);
    const users = await ui.page.locator('#sessions tbody tr td:nth-child(2)').allTextContents();
    expect(new Set(users)).toEqual(new Set(['carol']));
    await ui.page.reload();
    expect(await s.at(2)).toEqual(pages[1]);
    expect(await ui.page.inputValue('#f-user')).toBe('carol');
    await ui.page.click('#sessions-prev');
    expect(await s.at(1)).toEqual(pages[0]);
    // Narrower: page 1 of the new list.
    await ui.page.click('#sessions-next');
    await s.at(2);
    await ui.page.fill('#f-target', 'web-a');
    const narrower = await s.forward();
    expect(sorted(narrower.flat())).toEqual(sorted((await ui.proxy.cp.recordings.list()).filter((m) => m.user === 'carol' && m.target === 'web-a').map((m) => m.id)));
  });

  it('a page past the end says it is empty; a cursor the server never returned is refused plainly', async () => {
    await ui.page.goto(`${ui.base}/#/sessions?limit=${LIMIT}&cursor=1.0`);
    await ui.page.locator('#sessions-pager').waitFor();
    await ui.page.locator('.notice', { hasText: 'This page is empty' }).waitFor();
    expect(await s.where()).toContain('no sessions · last page');
    expect(await s.disabled('next')).toBe(true);
    await ui.page.click('#sessions-first');
    expect((await s.at(1)).length).toBe(LIMIT);
    await ui.page.goto(`${ui.base}/#/sessions?cursor=${encodeURIComponent("1' OR 1=1 --")}`);
    await ui.page.locator('.notice.error').waitFor();
    expect(await ui.page.locator('.notice.error').textContent()).toBe('"cursor" is not one this server returned');
    expect(await ui.page.locator('#sessions tbody tr').count()).toBe(0);
    await ui.page.click('#sessions-first');
    expect((await s.at(1)).length).toBe(N);
  });
});

describe('search results pages', () => {
  const r = list('search');

  it('Next to the last page sees every recording with the word once; Previous comes back; a reload keeps the page', async () => {
    await ui.page.goto(`${ui.base}/#/sessions?limit=${LIMIT}`);
    await ui.page.fill('#search', 'pagingword');
    await ui.page.click('#search-go');
    const pages = await r.forward();
    expect(pages.map((p) => p.length)).toEqual([12, 12, 12, 12, 12]);
    const seen = pages.flat();
    expect(new Set(seen).size).toBe(N);
    expect(sorted(seen)).toEqual(sorted(onDisk));
    expect(await r.where()).toBe('Page 5 · hits 49–60 · last page');
    await ui.page.screenshot({ path: join(SHOTS, 'search-paging.png'), fullPage: false });
    expect(hash()).toMatch(/^#\/sessions\?q=pagingword&search_cursor=\d+&limit=12$/);
    // The sessions list under it stayed on its first page.
    expect(await s().where()).toBe('Page 1 · sessions 1–12');
    await ui.page.reload();
    expect(await r.at(5)).toEqual(pages[4]);
    await r.back(pages);
    await ui.page.goBack();
    expect(await r.at(2)).toEqual(pages[1]);
  });

  it('q, kind, user, target and since stay across pages and a reload', async () => {
    await ui.page.goto(`${ui.base}/#/sessions?q=pagingword&kind=output&limit=${LIMIT}`);
    await r.at(1);
    await ui.page.fill('#f-user', 'carol');
    await ui.page.fill('#f-target', 'web');
    await ui.page.fill('#f-from', before);
    await ui.page.locator('#search-filters').filter({ hasText: 'since' }).waitFor();
    const pages = await r.forward();
    expect(pages.map((p) => p.length)).toEqual([12, 8]);
    expect(sorted(pages.flat())).toEqual(sorted(carols));
    expect(hash()).toContain(`q=pagingword&kind=output&user=carol&target=web&from=${before}&search_cursor=`);
    const heads = await ui.page.locator('#results section.hit-rec h3 a').allTextContents();
    expect(heads.every((t) => /^carol@web-[ab]$/.test(t))).toBe(true);
    expect(await ui.page.locator('#search-filters').textContent()).toBe('filtered by kind, user, target, since');
    await ui.page.reload();
    expect(await r.at(2)).toEqual(pages[1]);
    expect(await ui.page.inputValue('#search-kind')).toBe('output');
    expect(await ui.page.inputValue('#f-from')).toBe(before);
    await ui.page.click('#search-prev');
    expect(await r.at(1)).toEqual(pages[0]);
  });
});

describe('the page', () => {
  it('had no script errors (failed requests aside: the sign-in\'s 401, the refused cursor\'s 400)', () => {
    expect(ui.errors.filter((e) => !e.startsWith('console: Failed to load resource'))).toEqual([]);
  });
});

function s() {
  return list('sessions');
}
