import { h } from './dom.js';

// Keyset paging over an API's `next_cursor` (GET /api/v1/ui/sessions, GET /api/v1/search).
// A page is its cursor ('' for the first, newest page), kept in the URL hash. The API only goes
// forward, so Previous walks back through the cursors already seen (the page's `trail`), kept in
// history.state: a reload or Back keeps both. A page opened from a link has no trail; First goes
// to the newest page from there.

const MAX_TRAIL = 10_000;

/** The page `key` of the URL (`cursor`, `search_cursor`) with the trail this history entry holds. */
export function readPage(query, key) {
  const cursor = query.get(key) ?? '';
  const saved = history.state?.trails?.[key];
  const ok = cursor && Array.isArray(saved) && saved.length <= MAX_TRAIL && saved.every((c) => typeof c === 'string');
  return { cursor, trail: ok ? saved : [] };
}

/** history.state for a set of pages by key: only their trails (the cursors are in the hash). */
export function pagesState(pages) {
  return { trails: Object.fromEntries(Object.entries(pages).map(([k, p]) => [k, p.trail])) };
}

export const firstPage = () => ({ cursor: '', trail: [] });
const nextPage = (page, cursor) => ({ cursor, trail: [...page.trail, page.cursor] });
const prevPage = (page) => ({ cursor: page.trail.at(-1), trail: page.trail.slice(0, -1) });

/** The page size: `limit` in the hash (1 to `max`), else `fallback`. */
export function pageSize(query, fallback, max) {
  const n = Number(query.get('limit'));
  return Number.isInteger(n) && n >= 1 && n <= max ? n : fallback;
}

/**
 * First / Previous / "Page N · rows a–b · last page" / Next for the page shown; `go(page)` shows
 * another one. Every earlier page of a trail was full (a page with a next cursor holds `limit`
 * rows), so the row numbers are known whenever the trail reaches back to the first page.
 */
export function pagerControls({ id, page, next, shown, limit, noun, go }) {
  const known = !page.cursor || page.trail[0] === '';
  const number = page.trail.length + 1;
  const from = (number - 1) * limit + 1;
  const rows = !shown ? `no ${noun}` : known ? `${noun} ${from}–${from + shown - 1}` : `${shown} ${noun}`;
  const where = known ? `Page ${number}` : 'A later page (its earlier pages are not known here)';
  const btn = (suffix, label, enabled, to) => h('button', { type: 'button', id: `${id}-${suffix}`, class: 'pager-btn', disabled: !enabled, onclick: () => { if (enabled) go(to()); } }, label);
  return h('nav', { class: 'pager', id: `${id}-pager`, 'aria-label': `${noun} pages`, 'data-page': known ? String(number) : '', 'data-last': next ? undefined : '' },
    btn('first', '« Newest', !!page.cursor, firstPage),
    btn('prev', '‹ Previous', page.trail.length > 0, () => prevPage(page)),
    h('span', { class: 'muted pager-where', id: `${id}-page` }, `${where} · ${rows}${next ? '' : ' · last page'}`),
    btn('next', 'Next ›', !!next, () => nextPage(page, next)));
}
