import { h, clear, notice, fmtTime, fmtOffset, fmtBytes } from '../dom.js';
import { get } from '../api.js';
import { marked, matcher } from '../highlight.js';

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

/** Hits of one recording this close (seconds) are one moment: a typed command, its echo and its marker. */
const MOMENT = 2.5;
const KIND_ORDER = ['command', 'sql', 'marker', 'output'];

/** Adds a page of hits to the groups: per recording, then per moment (kinds listed, texts kept once). */
function addHits(recs, hits) {
  for (const hit of hits) {
    let rec = recs.get(hit.recording);
    if (!rec) recs.set(hit.recording, (rec = { hit, moments: [] }));
    const text = hit.command ? hit.command.text : hit.snippet;
    // One command per moment: lines run close together stay results of their own; an output or
    // marker hit joins the moment whose command it names, else the first one close enough.
    const close = rec.moments.filter((g) => Math.abs(g.t - hit.t) <= MOMENT && (!hit.command || !g.command || g.command.text === hit.command.text));
    let m = close.find((g) => g.command && text.includes(g.command.text)) ?? close[0];
    if (!m) rec.moments.push((m = { t: hit.t, time: hit.time, kinds: new Set(), texts: [], command: undefined }));
    m.kinds.add(hit.kind);
    if (hit.command && !m.command) m.command = hit.command;
    // Where to replay from: the latest of the moment's hits, so the match is on the screen (an
    // output chunk is timed from its start; the echo of a judged line may come after its marker).
    if (hit.t > m.t) { m.t = hit.t; m.time = hit.time; }
    if (!m.texts.some((x) => x.text === text)) m.texts.push({ kind: hit.kind, text });
  }
}

function momentRow(id, m, q, re) {
  const href = `#/recording/${encodeURIComponent(id)}?t=${m.t.toFixed(3)}&q=${encodeURIComponent(q)}`;
  const c = m.command;
  const kinds = [...m.kinds].sort((a, b) => KIND_ORDER.indexOf(a) - KIND_ORDER.indexOf(b));
  const texts = [...m.texts].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  return h('li', { class: 'hit', 'data-kinds': kinds.join(',') },
    h('a', { href, class: 'hit-link' }, fmtTime(m.time), ' · at ', fmtOffset(m.t)),
    ' ', ...kinds.map((k) => h('span', { class: `badge kind ${k}` }, k)),
    c ? h('span', { class: `badge verdict ${c.verdict === 'deny' ? 'deny' : ''}` }, c.rule ? `${c.verdict} (${c.rule})` : c.verdict) : null,
    c?.outcome ? h('span', { class: 'muted outcome' }, ` ${c.outcome}`) : null,
    ...texts.map((x) => h('pre', { class: `snippet ${x.kind}` }, ...marked(x.text, re))));
}

function resultsOf(recs, q) {
  const re = matcher(q);
  return [...recs.entries()].map(([id, rec]) => h('section', { class: 'hit-rec', 'data-recording': id },
    h('h3', {}, h('a', { href: `#/recording/${encodeURIComponent(id)}?q=${encodeURIComponent(q)}`, class: 'rec-link' }, `${rec.hit.user}@${rec.hit.target}`),
      h('span', { class: 'muted' }, ` as ${rec.hit.login} · ${rec.hit.protocol} · started ${fmtTime(rec.hit.start)} · ${rec.moments.length} moment${rec.moments.length === 1 ? '' : 's'}`)),
    h('ul', { class: 'hits' }, ...rec.moments.map((m) => momentRow(id, m, q, re)))));
}

function indexNote(index) {
  if (!index || index.state !== 'building') return '';
  return notice(`The search index is catching up with the recordings (${index.done} of ${index.total}); older sessions may be missing for now.`);
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
  const more = h('p');
  // Pages of the session list; the list refreshes itself only while one page is shown.
  let pages = 1;

  // The state comes from the URL first.
  for (const k of ['user', 'target', 'protocol', 'status', 'from', 'to']) f[k].value = query.get(k) ?? '';
  f.denials.checked = query.get('denials') === '1';
  q.value = query.get('q') ?? '';
  kind.value = query.get('kind') ?? '';

  const state = () => {
    const p = new URLSearchParams();
    if (q.value.trim()) p.set('q', q.value.trim());
    if (kind.value) p.set('kind', kind.value);
    for (const k of ['user', 'target', 'protocol', 'status', 'from', 'to']) if (f[k].value) p.set(k, f[k].value);
    if (f.denials.checked) p.set('denials', '1');
    return p;
  };
  /** Writes the state into the URL: a new history entry for a search, in place for a filter edit. */
  const keepInUrl = (push) => {
    const p = state();
    const hash = `#/sessions${[...p.keys()].length ? `?${p}` : ''}`;
    if (location.hash === hash) return;
    history[push ? 'pushState' : 'replaceState'](null, '', hash);
  };

  const filters = () => {
    const p = new URLSearchParams();
    for (const k of ['user', 'target', 'protocol', 'status']) if (f[k].value) p.set(k, f[k].value);
    for (const k of ['from', 'to']) if (f[k].value) p.set(k, new Date(f[k].value).toISOString());
    if (f.denials.checked) p.set('denials', '1');
    return p;
  };
  const load = async (cursor) => {
    const p = filters();
    if (cursor) p.set('cursor', cursor);
    try {
      const r = await get(`/api/v1/ui/sessions?${p}`);
      const rows = r.sessions.map(sessionRow);
      if (cursor) { table.append(...rows); pages++; } else { clear(table, ...rows); pages = 1; }
      clear(status, indexNote(r.index), table.children.length ? '' : notice('No sessions match.'));
      clear(more, r.next_cursor ? h('button', { type: 'button', id: 'sessions-more', onclick: () => void load(r.next_cursor) }, 'More sessions') : '');
    } catch (err) {
      clear(status, notice(err.message, 'error'));
    }
  };
  /** The search with the filters beside it: user and target (substrings, as the list), kind, started from/to; protocol on the results. */
  const searchParams = (text) => {
    const p = new URLSearchParams({ q: text });
    if (kind.value) p.set('kind', kind.value);
    if (f.user.value.trim()) p.set('user', globOf(f.user.value.trim()));
    if (f.target.value.trim()) p.set('target', globOf(f.target.value.trim()));
    if (f.from.value) p.set('since', new Date(f.from.value).toISOString());
    if (f.to.value) p.set('until', new Date(f.to.value).toISOString());
    return p;
  };
  let searchRun = 0;
  const search = async (cursor, recs = new Map()) => {
    const text = q.value.trim();
    const run = ++searchRun;
    if (!text) { clear(results); return; }
    if (!cursor) clear(results, h('p', { class: 'muted' }, 'Searching…'));
    const p = searchParams(text);
    if (cursor) p.set('cursor', cursor);
    try {
      const r = await get(`/api/v1/search?${p}`);
      if (run !== searchRun) return; // a newer search replaced this one
      addHits(recs, f.protocol.value ? r.hits.filter((x) => x.protocol === f.protocol.value) : r.hits);
      const moments = [...recs.values()].reduce((n, x) => n + x.moments.length, 0);
      const used = [...p.keys()].filter((k) => !['q', 'cursor'].includes(k));
      const next = r.next_cursor ? h('button', { type: 'button', id: 'search-more', onclick: () => void search(r.next_cursor, recs) }, 'More results') : '';
      clear(results, indexNote(r.index),
        h('h2', {}, `${moments}${r.next_cursor ? '+' : ''} result${moments === 1 ? '' : 's'} in ${recs.size} recording${recs.size === 1 ? '' : 's'} for “`, r.query, '”'),
        used.length || f.protocol.value ? h('p', { class: 'muted small', id: 'search-filters' }, `filtered by ${[...used, ...(f.protocol.value ? ['protocol'] : [])].join(', ')}`) : '',
        ...resultsOf(recs, text), next);
    } catch (err) {
      if (run === searchRun) clear(results, notice(err.message, 'error'));
    }
  };
  let typing;
  const changed = () => {
    keepInUrl(false);
    void load();
    clearTimeout(typing);
    if (q.value.trim()) typing = setTimeout(() => void search(), 300);
  };
  for (const el of Object.values(f)) el.addEventListener('change', changed);
  for (const el of [f.user, f.target]) el.addEventListener('input', changed);
  kind.addEventListener('change', () => { keepInUrl(true); void search(); });

  clear(main,
    h('h1', {}, 'Sessions'),
    h('form', { class: 'searchbar', onsubmit: (e) => { e.preventDefault(); keepInUrl(true); void search(); } }, q, kind, h('button', { type: 'submit', id: 'search-go' }, 'Search')),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); void load(); } },
      f.user, f.target, f.protocol, f.status, h('label', {}, 'from ', f.from), h('label', {}, 'to ', f.to),
      h('label', { for: 'f-denials' }, f.denials, ' has denials')),
    results,
    status,
    h('table', { class: 'grid', id: 'sessions' },
      h('thead', {}, h('tr', {}, ...['Started', 'User', 'Target', 'Protocol', 'Command', 'Duration', 'End', 'Denials', 'Size', ''].map((t) => h('th', {}, t)))),
      table),
    more);
  await Promise.all([load(), q.value.trim() ? search() : undefined]);
  const timer = setInterval(() => { if (pages === 1) void load(); }, 5000);
  return () => { clearInterval(timer); clearTimeout(typing); };
}
