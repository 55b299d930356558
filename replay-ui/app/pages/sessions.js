import { h, clear, notice, fmtTime, fmtOffset, fmtBytes } from '../dom.js';
import { get } from '../api.js';

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
  return h('tr', { 'data-recording': m.id, class: m.denials ? 'has-denials' : undefined },
    h('td', {}, fmtTime(m.start)),
    h('td', {}, m.user),
    h('td', {}, m.target, h('span', { class: 'muted' }, ` as ${m.login}`)),
    h('td', {}, h('span', { class: `badge ${m.protocol}` }, m.protocol)),
    h('td', {}, m.status === 'live' ? h('span', { class: 'badge live' }, 'live') : duration(m)),
    h('td', {}, m.denials ? h('span', { class: 'badge deny' }, String(m.denials)) : ''),
    h('td', { class: 'num' }, fmtBytes(m.bytes ?? 0)),
    h('td', { class: 'actions' },
      h('a', { href: `#/recording/${encodeURIComponent(m.id)}`, class: 'open' }, m.protocol === 'ssh' ? 'Replay' : 'Statements'),
      m.liveSession ? h('a', { href: `#/live/${encodeURIComponent(m.liveSession)}`, class: 'watch' }, 'Watch') : null,
      ...downloads(m)));
}

function hitRow(hit) {
  const href = `#/recording/${encodeURIComponent(hit.recording)}?t=${hit.t.toFixed(3)}`;
  const c = hit.command;
  return h('li', { class: 'hit' },
    h('a', { href, class: 'hit-link' }, `${hit.user}@${hit.target}`, ' · ', fmtTime(hit.time ?? hit.start), ' · at ', fmtOffset(hit.t)),
    ' ', h('span', { class: `badge ${hit.kind}` }, hit.kind),
    c ? h('span', { class: `badge verdict ${c.verdict === 'deny' ? 'deny' : ''}` }, c.rule ? `${c.verdict} (${c.rule})` : c.verdict) : null,
    c?.outcome ? h('span', { class: 'muted outcome' }, ` ${c.outcome}`) : null,
    h('pre', { class: 'snippet' }, c ? c.text : hit.snippet));
}

function indexNote(index) {
  if (!index || index.state !== 'building') return '';
  return notice(`The search index is catching up with the recordings (${index.done} of ${index.total}); older sessions may be missing for now.`);
}

export async function render(main) {
  const f = {
    user: h('input', { name: 'user', placeholder: 'user' }),
    target: h('input', { name: 'target', placeholder: 'target' }),
    protocol: h('select', { name: 'protocol' }, h('option', { value: '' }, 'any protocol'), h('option', { value: 'ssh' }, 'ssh'), h('option', { value: 'postgres' }, 'postgres')),
    status: h('select', { name: 'status' }, h('option', { value: '' }, 'live or ended'), h('option', { value: 'live' }, 'live'), h('option', { value: 'ended' }, 'ended')),
    from: h('input', { name: 'from', type: 'datetime-local', title: 'started after' }),
    to: h('input', { name: 'to', type: 'datetime-local', title: 'started before' }),
    denials: h('input', { name: 'denials', type: 'checkbox', id: 'f-denials' }),
  };
  const q = h('input', { name: 'q', id: 'search', type: 'search', placeholder: 'Search output, typed commands and SQL…' });
  const kind = h('select', { name: 'kind', id: 'search-kind', title: 'what to search' },
    h('option', { value: '' }, 'everything'), h('option', { value: 'output' }, 'output'), h('option', { value: 'command' }, 'commands'), h('option', { value: 'sql' }, 'SQL'), h('option', { value: 'input' }, 'stdin text'));
  const results = h('div', { id: 'results' });
  const table = h('tbody');
  const status = h('div');
  const more = h('p');
  // Pages of the session list; the list refreshes itself only while one page is shown.
  let pages = 1;

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
  const search = async (e, cursor, list) => {
    e?.preventDefault();
    const text = q.value.trim();
    if (!text) { clear(results); return; }
    if (!cursor) clear(results, h('p', { class: 'muted' }, 'Searching…'));
    const p = new URLSearchParams({ q: text });
    if (kind.value) p.set('kind', kind.value);
    if (cursor) p.set('cursor', cursor);
    try {
      const r = await get(`/api/v1/search?${p}`);
      const ul = list ?? h('ul', { class: 'hits' });
      ul.append(...r.hits.map(hitRow));
      const shown = ul.children.length;
      const next = r.next_cursor ? h('button', { type: 'button', id: 'search-more', onclick: () => void search(undefined, r.next_cursor, ul) }, 'More results') : '';
      clear(results, indexNote(r.index), h('h2', {}, `${shown}${r.next_cursor ? '+' : ''} hit${shown === 1 ? '' : 's'} for “`, r.query, '”'), ul, next);
    } catch (err) {
      clear(results, notice(err.message, 'error'));
    }
  };
  for (const el of Object.values(f)) el.addEventListener('change', () => void load());
  for (const el of [f.user, f.target]) el.addEventListener('input', () => void load());
  kind.addEventListener('change', () => void search());

  clear(main,
    h('h1', {}, 'Sessions'),
    h('form', { class: 'searchbar', onsubmit: (e) => void search(e) }, q, kind, h('button', { type: 'submit', id: 'search-go' }, 'Search')),
    results,
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); void load(); } },
      f.user, f.target, f.protocol, f.status, h('label', {}, 'from ', f.from), h('label', {}, 'to ', f.to),
      h('label', { for: 'f-denials' }, f.denials, ' has denials')),
    status,
    h('table', { class: 'grid', id: 'sessions' },
      h('thead', {}, h('tr', {}, ...['Started', 'User', 'Target', 'Protocol', 'Duration', 'Denials', 'Size', ''].map((t) => h('th', {}, t)))),
      table),
    more);
  await load();
  const timer = setInterval(() => { if (pages === 1) void load(); }, 5000);
  return () => clearInterval(timer);
}
