import { h, clear, notice, fmtTime, fmtOffset, fmtBytes } from '../dom.js';
import { get } from '../api.js';
import { byteView } from './byte-view.js';
import { seekTarget, startAtOption, toPlayer, toRecording } from '../idle-map.js';
import { highlightLines, marked, matcher } from '../highlight.js';

const LARGE_BYTES = 4 * 1024 * 1024;
const WINDOW_SECONDS = 600;
const WINDOW_BYTES = 2 * 1024 * 1024;

function header(meta, liveSession) {
  const formats = meta.format === 'asciicast' ? ['asciicast', 'text'] : meta.format === 'raw' ? ['raw', 'asciicast', 'text'] : ['jsonl'];
  return h('div', { class: 'rec-head' },
    h('h1', {}, `${meta.user}@${meta.target}`, h('span', { class: 'muted' }, ` as ${meta.login}`)),
    h('p', { class: 'meta' },
      h('span', { class: `badge ${meta.protocol}` }, meta.protocol), ' ',
      h('span', { class: `badge ${meta.status === 'live' ? 'live' : ''}` }, meta.status), ' ',
      'started ', fmtTime(meta.start), meta.end ? ` · ended ${fmtTime(meta.end)}` : '',
      meta.endReason ? ` · ${meta.endReason}` : '', ` · ${fmtBytes(meta.bytes ?? 0)}`,
      meta.clientAddress ? ` · from ${meta.clientAddress}` : '',
      ' · id ', h('code', {}, meta.id)),
    h('p', { class: 'actions' },
      liveSession ? h('a', { class: 'button', href: `#/live/${encodeURIComponent(liveSession)}` }, 'Watch live') : null,
      'Download: ', ...formats.map((f) => h('a', { class: 'dl', href: `/api/v1/recordings/${encodeURIComponent(meta.id)}/export?format=${f}`, download: '' }, f))));
}

function sshReplay(main, data, query) {
  const { meta, index } = data;
  // `?q=` (a search hit's link): its matches are highlighted in the panels and on the screen.
  const q = query.get('q') ?? '';
  const re = matcher(q);
  const holder = h('div', { id: 'player', class: 'player' });
  const speed = h('select', { id: 'speed', title: 'speed' }, ...[0.5, 1, 2, 4, 8].map((s) => h('option', { value: String(s), selected: s === 1 }, `${s}×`)));
  const idle = h('select', { id: 'idle', title: 'idle time limit' }, h('option', { value: '' }, 'no idle limit'), ...[0.5, 1, 2, 5].map((s) => h('option', { value: String(s), selected: s === 2 }, `skip idle > ${s}s`)));
  const keys = h('input', { type: 'checkbox', id: 'keys-toggle', checked: true });
  const typedList = h('ol', { class: 'typed', id: 'typed' });
  const markerList = h('ol', { class: 'markers', id: 'markers' });
  let player;
  const src = `/api/v1/ui/recordings/${encodeURIComponent(meta.id)}/cast`;
  // Long recordings load in windows with a keyframe; the slider spans the whole session.
  const windowed = index.bytes > LARGE_BYTES;
  let base = 0;
  let span = WINDOW_SECONDS;
  /** Seconds from `from` that hold about WINDOW_BYTES of the file (busy stretches get shorter windows). */
  const spanFor = (from) => {
    const cps = index.checkpoints;
    const i = cps.findIndex((c) => c.t >= from);
    if (i < 0) return WINDOW_SECONDS;
    const j = cps.findIndex((c) => c.offset >= cps[i].offset + WINDOW_BYTES);
    const end = j < 0 ? index.duration + 1 : cps[j].t;
    return Math.min(WINDOW_SECONDS, Math.max(5, end - from));
  };
  const timeline = h('input', { type: 'range', id: 'timeline', min: 0, max: String(Math.ceil(index.duration)), step: '1', value: '0', title: 'whole session' });
  const where = h('span', { class: 'muted', id: 'window-label' });
  // Marker, typed-line, search-hit and ?t= times are recording times; the player's clock is
  // idle-limited (idle-map.js). `shown` is the limit the current player was made with.
  const gaps = index.gaps ?? [];
  let shown = 0;
  const playerAt = (t) => toPlayer(t, gaps, shown, base);
  const playerSeek = (t) => seekTarget(t, gaps, shown, base);
  const recordingNow = async () => (player ? toRecording(Number(await Promise.resolve(player.getCurrentTime()).catch(() => 0)) || 0, gaps, shown, base) : 0);

  const create = async (at) => {
    const now = at ?? (await recordingNow());
    player?.dispose();
    holder.replaceChildren();
    let url = src;
    let startAt = now;
    if (windowed) {
      // In whole ms, as the window's URL gives it: the player's event times count from there.
      base = Number(Math.max(0, now - 1).toFixed(3));
      startAt = now - base;
      span = spanFor(base);
      url = `${src}?from=${base.toFixed(3)}&span=${span.toFixed(3)}`;
      timeline.value = String(Math.floor(now));
      clear(where, `window ${fmtOffset(base)} – ${fmtOffset(Math.min(index.duration, base + span))} of ${fmtOffset(index.duration)}`);
    }
    shown = Number(idle.value) || 0;
    const opts = { cols: index.width, rows: index.height, speed: Number(speed.value), preload: true, fit: 'width', terminalFontSize: '14px' };
    // The player puts option markers on its own (idle-limited) timeline.
    if (!windowed) opts.markers = index.markers.map((m) => [playerAt(m.t), m.label]);
    if (shown) opts.idleTimeLimit = shown;
    // startAt is the file's own time: the player idle-maps it itself (idle-map.js startAtOption).
    if (startAt > 0) opts.startAt = startAtOption(now, base);
    player = window.AsciinemaPlayer.create({ url, fetchOpts: { credentials: 'same-origin' } }, holder, opts);
    // startAt only places a later play(); the paused screen at the moment needs a seek. The
    // player runs it after its load (its commands wait for init), so one seek is enough.
    if (startAt > 0) await player.seek(playerSeek(now)).catch(() => undefined);
    holder.dataset.loaded = String(now);
  };
  const seek = async (t) => {
    if (!player) return;
    if (windowed && (t < base || t > base + span)) await create(t);
    else await player.seek(playerSeek(t));
    holder.dataset.seeked = String(t);
  };
  timeline.addEventListener('change', () => void create(Number(timeline.value)));
  const stepMarker = async (dir) => {
    const now = await recordingNow();
    const list = dir > 0 ? index.markers.filter((m) => m.t > now + 0.01) : index.markers.filter((m) => m.t < now - 0.5).reverse();
    if (list[0]) await seek(list[0].t);
  };
  speed.addEventListener('change', () => void create());
  idle.addEventListener('change', () => void create());
  keys.addEventListener('change', () => typedPanel.classList.toggle('hidden', !keys.checked));

  for (const [i, m] of index.markers.entries()) {
    const deny = /^(\[pam\] )?(denied|refused)\b/.test(m.label);
    // `[pam] …`: a line the proxy itself showed the user (proxy/ssh/user-notice.ts).
    const said = m.label.startsWith('[pam] ');
    const hit = re && new RegExp(re.source, 'iu').test(m.label);
    markerList.append(h('li', { class: [deny ? 'deny' : '', said ? 'proxy-said' : '', hit ? 'match' : ''].join(' ').trim() }, h('button', { type: 'button', class: 'link marker', 'data-t': String(m.t), 'data-i': String(i), onclick: () => void seek(m.t) }, fmtOffset(m.t)), ' ', h('span', {}, ...marked(m.label, re))));
  }
  for (const k of index.typed) {
    const hit = re && new RegExp(re.source, 'iu').test(k.line);
    typedList.append(h('li', { class: hit ? 'match' : '' }, h('button', { type: 'button', class: 'link typed-line', 'data-t': String(k.t), onclick: () => void seek(k.t) }, fmtOffset(k.t)), ' ', h('code', {}, ...marked(k.line, re))));
  }
  // The marker and typed line at or before the moment shown are highlighted while it plays.
  const highlight = (list, items, now) => {
    let cur = -1;
    for (let i = 0; i < items.length && items[i].t <= now + 0.01; i++) cur = i;
    for (const [i, li] of [...list.children].entries()) li.classList.toggle('current', i === cur);
  };
  const ticker = setInterval(() => void recordingNow().then((now) => {
    holder.dataset.now = now.toFixed(3);
    highlight(markerList, index.markers, now);
    highlight(typedList, index.typed, now);
    if (re) holder.dataset.matches = String(highlightLines(holder, re));
  }), 300);
  const typedPanel = h('section', { class: 'panel', id: 'typed-panel' }, h('h2', {}, 'Keystrokes (typed lines)'), index.typed.length ? typedList : h('p', { class: 'muted' }, 'No typed input recorded.'));

  clear(main, header(meta, data.liveSession),
    h('div', { class: 'controls' }, speed, idle, h('label', { for: 'keys-toggle' }, keys, ' keystroke track'),
      h('button', { type: 'button', id: 'prev-marker', onclick: () => void stepMarker(-1) }, '◀ marker'),
      h('button', { type: 'button', id: 'next-marker', onclick: () => void stepMarker(1) }, 'marker ▶'),
      h('span', { class: 'muted' }, ` ${fmtOffset(index.duration)} · ${index.events} events · ${index.denials} denials`),
      re ? h('span', { class: 'badge', id: 'search-term' }, 'highlighting “', q, '”') : null),
    windowed ? h('div', { class: 'controls timeline' }, timeline, where) : null,
    h('div', { class: 'replay' }, holder,
      h('aside', {}, h('section', { class: 'panel' }, h('h2', {}, 'Markers'), index.markers.length ? markerList : h('p', { class: 'muted' }, 'No markers.')), typedPanel)),
    data.raw ? byteView(meta, data.raw) : null);
  const t = Number(query.get('t'));
  void create(Number.isFinite(t) && t > 0 ? t : 0);
  return () => {
    clearInterval(ticker);
    if (re) highlightLines(holder, undefined);
    player?.dispose();
  };
}

function statementsPage(main, data, query) {
  const { meta, statements } = data;
  const re = matcher(query.get('q') ?? '');
  const filter = h('input', { id: 'sql-filter', type: 'search', placeholder: 'filter SQL text…' });
  const only = h('select', { id: 'sql-only' }, h('option', { value: '' }, 'all statements'), h('option', { value: 'deny' }, 'denied'), h('option', { value: 'error' }, 'errors'), h('option', { value: 'verdict' }, 'with a verdict'));
  const body = h('tbody');
  const row = (s) => {
    // What the proxy itself told the client (a hold, an approval, the FATAL that ended the session).
    if (s.type === 'notice' || s.type === 'error') {
      return h('tr', { class: `proxy-said ${s.type === 'error' ? 'has-error' : ''}` },
        h('td', {}, fmtOffset(s.offset), h('div', { class: 'muted small' }, fmtTime(s.t))),
        h('td', { colspan: '4' }, h('pre', { class: 'sql proxy-notice' }, `[pam] ${s.severity}: ${s.message}`)),
        h('td', {}, s.sqlstate ?? ''), h('td', {}, h('span', { class: 'badge' }, 'proxy')), h('td', {}));
    }
    const v = s.verdict;
    const paramsCell = h('td', {});
    if (s.params) {
      paramsCell.append(h('button', { type: 'button', class: 'link', onclick: async () => {
        try {
          const r = await get(`/api/v1/ui/recordings/${encodeURIComponent(meta.id)}/statements/${s.n}/params`);
          clear(paramsCell, h('pre', { class: 'params' }, JSON.stringify(r.params, null, 1)));
        } catch (err) {
          clear(paramsCell, notice(err.message, 'error'));
        }
      } }, `show ${s.params}`));
    }
    return h('tr', { class: v?.action === 'deny' ? 'has-denials' : s.sqlstate ? 'has-error' : undefined },
      h('td', {}, fmtOffset(s.offset), h('div', { class: 'muted small' }, fmtTime(s.t))),
      h('td', {}, h('pre', { class: 'sql' }, ...marked(s.sql ?? '(none)', re))),
      h('td', { class: 'num' }, s.duration_ms === undefined ? '' : `${s.duration_ms} ms`),
      h('td', { class: 'num' }, s.rows ?? ''),
      h('td', {}, s.tag ?? ''),
      h('td', {}, s.sqlstate ? h('span', { title: s.error ?? '' }, s.sqlstate) : ''),
      h('td', {}, v ? h('span', { class: `badge ${v.action}`, title: v.message ?? '' }, v.action, v.rule ? ` · ${v.rule}` : '') : ''),
      paramsCell);
  };
  const draw = () => {
    const text = filter.value.toLowerCase();
    const rows = statements.rows.filter((s) => (!text || (s.sql ?? s.message ?? '').toLowerCase().includes(text))
      && (!only.value || (only.value === 'deny' ? s.verdict?.action === 'deny' : only.value === 'error' ? !!s.sqlstate : !!s.verdict)));
    clear(body, ...rows.map(row));
  };
  filter.addEventListener('input', draw);
  only.addEventListener('change', draw);
  clear(main, header(meta, data.liveSession),
    h('div', { class: 'controls' }, filter, only, h('span', { class: 'muted' }, ` ${statements.rows.filter((s) => s.type !== 'notice' && s.type !== 'error').length} statements · ${statements.denials} denied`)),
    h('table', { class: 'grid', id: 'statements' },
      h('thead', {}, h('tr', {}, ...['Time', 'SQL', 'Duration', 'Rows', 'Tag', 'SQLSTATE', 'Verdict', 'Parameters'].map((t) => h('th', {}, t)))), body));
  draw();
}

export async function render(main, { params, query }) {
  const id = params[0] ?? '';
  if (!/^[0-9a-z]{8,16}-[0-9a-f]{8}$/.test(id)) {
    clear(main, notice('Not a recording id.', 'error'));
    return undefined;
  }
  const data = await get(`/api/v1/ui/recordings/${encodeURIComponent(id)}`);
  if (data.meta.format === 'asciicast' || data.meta.format === 'raw') return sshReplay(main, data, query);
  statementsPage(main, data, query);
  return undefined;
}
