import { h, clear, notice, fmtTime, fmtOffset, fmtBytes } from '../dom.js';
import { get } from '../api.js';
import { addHits, indexNote, resultsOf } from './search-results.js';
import { firstPage, pageSize, pagerControls, pagesState, readPage } from '../pager.js';

/** Rows per page unless the hash says `limit=` (the sessions API takes up to 500, search up to 200). */
const SESSIONS_PER_PAGE = 100;
const HITS_PER_PAGE = 50;

function downloads(m) {
  const formats = m.format === 'asciicast' ? ['asciicast', 'text'] : m.format === 'raw' ? ['raw', 'asciicast', 'text'] : ['jsonl'];
  return formats.map((f) => h('a', { class: 'dl', href: `/api/v1/recordings/${encodeURIComponent(m.id)}/export?format=${f}`, download: '' }, f));
}

function duration(m) {
  if (m.status === 'live') return 'live';
  if (!m.end) return m.status;
  const s = (Date.parse(m.end) - Date.parse(m.start)) / 1000;
  return Number.isFinite(s) ? fmtOffset(s) : m.status;
}

function sessionRow(m) {
  const ended = m.status !== 'live' && m.endReason;
  return h('tr', { 'data-recording': m.id, class: m.denials ? 'has-denials' : undefined },
    h('td', {}, fmtTime(m.start)),
    h('td', {}, m.user),
    h('td', {}, m.target, h('span', { class: 'muted' }, ` as ${m.login}`)),
    h('td', {}, h('span', { class: `badge ${m.protocol}` }, m.protocol)),
    h('td', { class: 'exec' }, m.exec ? h('code', { title: m.exec }, m.exec.length > 80 ? `${m.exec.slice(0, 79)}…` : m.exec) : ''),
    h('td', {}, m.status === 'live' ? h('span', { class: 'badge live' }, 'live') : duration(m)),
    h('td', { class: 'end-reason' }, ended ? h('span', { class: m.status === 'interrupted' ? 'badge deny' : 'muted' }, m.endReason) : ''),
    h('td', {}, m.denials ? h('span', { class: 'badge deny' }, String(m.denials)) : ''),
    h('td', { class: 'num size' }, fmtBytes(m.bytes ?? 0)),
    h('td', { class: 'actions' },
      h('a', { href: `#/recording/${encodeURIComponent(m.id)}`, class: 'open' }, m.protocol === 'ssh' ? 'Replay' : 'Statements'),
      m.liveSession ? h('a', { href: `#/live/${encodeURIComponent(m.liveSession)}`, class: 'watch' }, 'Watch') : null,
      ...downloads(m)));
}

/** A sessions-list filter (a substring) as the search API's user/target filter (exact or glob). */
const globOf = (v) => (/[*?]/.test(v) ? v : `*${v}*`);

export async function render(main, { query } = { query: new URLSearchParams() }) {
  const f = {
    user: h('input', { name: 'user', id: 'f-user', placeholder: 'user' }),
    target: h('input', { name: 'target', id: 'f-target', placeholder: 'target' }),
    protocol: h('select', { name: 'protocol', id: 'f-protocol' }, h('option', { value: '' }, 'any protocol'), h('option', { value: 'ssh' }, 'ssh'), h('option', { value: 'postgres' }, 'postgres')),
    status: h('select', { name: 'status', id: 'f-status' }, h('option', { value: '' }, 'live or ended'), h('option', { value: 'live' }, 'live'), h('option', { value: 'ended' }, 'ended')),
    from: h('input', { name: 'from', id: 'f-from', type: 'datetime-local', title: 'started after' }),
    to: h('input', { name: 'to', id: 'f-to', type: 'datetime-local', title: 'started before' }),
    denials: h('input', { name: 'denials', type: 'checkbox', id: 'f-denials' }),
  };
  const q = h('input', { name: 'q', id: 'search', type: 'search', placeholder: 'Search output, typed commands and SQL…' });
  const kind = h('select', { name: 'kind', id: 'search-kind', title: 'what to search' },
    h('option', { value: '' }, 'everything'), h('option', { value: 'output' }, 'output'), h('option', { value: 'command' }, 'commands'), h('option', { value: 'sql' }, 'SQL'), h('option', { value: 'marker' }, 'markers'), h('option', { value: 'input' }, 'stdin text'));
  const results = h('div', { id: 'results' });
  const table = h('tbody');
  const status = h('div');
  const pager = h('div', { id: 'sessions-paging' });

  // The state comes from the URL first: filters, the search, the page of each list (`cursor`,
  // `search_cursor`; their trails of earlier pages in history.state) and `limit`.
  for (const k of ['user', 'target', 'protocol', 'status', 'from', 'to']) f[k].value = query.get(k) ?? '';
  f.denials.checked = query.get('denials') === '1';
  q.value = query.get('q') ?? '';
  kind.value = query.get('kind') ?? '';
  const limitParam = query.get('limit') ?? '';
  const listLimit = pageSize(query, SESSIONS_PER_PAGE, 500);
  const hitLimit = pageSize(query, HITS_PER_PAGE, 200);
  let list = readPage(query, 'cursor');
  let hits = readPage(query, 'search_cursor');

  const state = () => {
    const p = new URLSearchParams();
    if (q.value.trim()) p.set('q', q.value.trim());
    if (kind.value) p.set('kind', kind.value);
    for (const k of ['user', 'target', 'protocol', 'status', 'from', 'to']) if (f[k].value) p.set(k, f[k].value);
    if (f.denials.checked) p.set('denials', '1');
    if (list.cursor) p.set('cursor', list.cursor);
    if (hits.cursor && q.value.trim()) p.set('search_cursor', hits.cursor);
    if (limitParam) p.set('limit', limitParam);
    return p;
  };
  /** Writes the state into the URL: a new history entry for a search or another page, in place for a filter edit. */
  const keepInUrl = (push) => {
    const p = state();
    const hash = `#/sessions${[...p.keys()].length ? `?${p}` : ''}`;
    const trails = pagesState({ cursor: list, search_cursor: hits });
    history[push && location.hash !== hash ? 'pushState' : 'replaceState'](trails, '', hash);
  };

  const filters = () => {
    const p = new URLSearchParams();
    for (const k of ['user', 'target', 'protocol', 'status']) if (f[k].value) p.set(k, f[k].value);
    for (const k of ['from', 'to']) if (f[k].value) p.set(k, new Date(f[k].value).toISOString());
    if (f.denials.checked) p.set('denials', '1');
    return p;
  };
  let listRun = 0;
  const load = async () => {
    const run = ++listRun;
    const page = list;
    const p = filters();
    p.set('limit', String(listLimit));
    if (page.cursor) p.set('cursor', page.cursor);
    try {
      const r = await get(`/api/v1/ui/sessions?${p}`);
      if (run !== listRun) return; // a newer load (another page, a filter edit) replaced this one
      clear(table, ...r.sessions.map(sessionRow));
      const empty = !r.sessions.length;
      clear(status, indexNote(r.index), !empty ? '' : notice(page.cursor
        ? 'This page is empty: no session matching the filters is older than the last one of the page before.'
        : 'No sessions match.'));
      clear(pager, empty && !page.cursor ? '' : pagerControls({
        id: 'sessions', page, next: r.next_cursor, shown: r.sessions.length, limit: listLimit, noun: 'sessions',
        go: (to) => { list = to; keepInUrl(true); void load(); },
      }));
    } catch (err) {
      if (run !== listRun) return;
      // A cursor this server did not return (an edited link) is a 400: say so, offer the first page.
      clear(table);
      clear(pager);
      clear(status, notice(err.message, 'error'), page.cursor ? h('button', { type: 'button', id: 'sessions-first', onclick: () => { list = firstPage(); keepInUrl(true); void load(); } }, '« Newest') : '');
    }
  };
  /** The search with the filters beside it: user and target (substrings, as the list), protocol, kind, started from/to. */
  const searchParams = (text) => {
    const p = new URLSearchParams({ q: text });
    if (kind.value) p.set('kind', kind.value);
    if (f.user.value.trim()) p.set('user', globOf(f.user.value.trim()));
    if (f.target.value.trim()) p.set('target', globOf(f.target.value.trim()));
    if (f.protocol.value) p.set('protocol', f.protocol.value);
    if (f.from.value) p.set('since', new Date(f.from.value).toISOString());
    if (f.to.value) p.set('until', new Date(f.to.value).toISOString());
    return p;
  };
  let searchRun = 0;
  const search = async () => {
    const text = q.value.trim();
    const run = ++searchRun;
    if (!text) { clear(results); return; }
    const page = hits;
    clear(results, h('p', { class: 'muted' }, 'Searching…'));
    const p = searchParams(text);
    p.set('limit', String(hitLimit));
    if (page.cursor) p.set('cursor', page.cursor);
    try {
      const r = await get(`/api/v1/search?${p}`);
      if (run !== searchRun) return; // a newer search replaced this one
      const recs = new Map();
      addHits(recs, r.hits);
      const moments = [...recs.values()].reduce((n, x) => n + x.moments.length, 0);
      const used = [...p.keys()].filter((k) => !['q', 'cursor', 'limit'].includes(k));
      const paged = !!(page.cursor || r.next_cursor);
      // The pager above the hits: the sessions table follows them, so one below would be lost between the two.
      clear(results, indexNote(r.index),
        h('h2', {}, `${moments} result${moments === 1 ? '' : 's'} in ${recs.size} recording${recs.size === 1 ? '' : 's'}${paged ? ' on this page' : ''} for “`, r.query, '”'),
        used.length ? h('p', { class: 'muted small', id: 'search-filters' }, `filtered by ${used.join(', ')}`) : '',
        paged ? pagerControls({
          id: 'search', page, next: r.next_cursor, shown: r.hits.length, limit: hitLimit, noun: 'hits',
          go: (to) => { hits = to; keepInUrl(true); void search(); },
        }) : '',
        !r.hits.length && page.cursor ? notice('This page is empty: no hit matching the search is older than the last one of the page before.') : '',
        ...resultsOf(recs, text));
    } catch (err) {
      if (run === searchRun) clear(results, notice(err.message, 'error'), page.cursor ? h('button', { type: 'button', id: 'search-first', onclick: () => { hits = firstPage(); keepInUrl(true); void search(); } }, '« Newest') : '');
    }
  };
  let typing;
  const changed = () => {
    // Other filters are other lists: both start again at their first page.
    list = firstPage();
    hits = firstPage();
    keepInUrl(false);
    void load();
    clearTimeout(typing);
    if (q.value.trim()) typing = setTimeout(() => void search(), 300);
  };
  const searchAgain = () => { hits = firstPage(); keepInUrl(true); void search(); };
  for (const el of Object.values(f)) el.addEventListener('change', changed);
  for (const el of [f.user, f.target]) el.addEventListener('input', changed);
  kind.addEventListener('change', searchAgain);

  clear(main,
    h('h1', {}, 'Sessions'),
    h('form', { class: 'searchbar', onsubmit: (e) => { e.preventDefault(); searchAgain(); } }, q, kind, h('button', { type: 'submit', id: 'search-go' }, 'Search')),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); changed(); } },
      f.user, f.target, f.protocol, f.status, h('label', {}, 'from ', f.from), h('label', {}, 'to ', f.to),
      h('label', { for: 'f-denials' }, f.denials, ' has denials')),
    results,
    status,
    h('table', { class: 'grid', id: 'sessions' },
      h('thead', {}, h('tr', {}, ...['Started', 'User', 'Target', 'Protocol', 'Command', 'Duration', 'End', 'Denials', 'Size', ''].map((t) => h('th', {}, t)))),
      table),
    pager);
  await Promise.all([load(), q.value.trim() ? search() : undefined]);
  // The first page refreshes itself (new and ended sessions); a later page stays as it was read.
  const timer = setInterval(() => { if (!list.cursor) void load(); }, 5000);
  return () => { clearInterval(timer); clearTimeout(typing); };
}
