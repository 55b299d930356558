import { h, clear, notice, fmtTime } from '../dom.js';
import { get, post } from '../api.js';
import { cspSafeXterm } from '../xterm-csp.js';

/** The Terminate form; `ended()` disables it (the session is gone: nothing left to terminate). */
function killForm(id, onDone) {
  const reason = h('input', { id: 'kill-reason', placeholder: 'reason (shown to the user and audited)', required: true });
  const button = h('button', { type: 'submit', class: 'danger', id: 'kill' }, 'Terminate session');
  const msg = h('span');
  const form = h('form', { class: 'kill', onsubmit: async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) { clear(msg, 'A reason is required.'); return; }
    button.disabled = true;
    try {
      const why = reason.value.trim();
      await post(`/api/v1/sessions/${encodeURIComponent(id)}/kill`, { reason: why });
      clear(msg, h('span', { class: 'ok', id: 'kill-done' }, 'Terminated.'));
      onDone?.(why);
    } catch (err) {
      button.disabled = false;
      clear(msg, notice(err.message, 'error'));
    }
  } }, reason, button, msg);
  form.ended = () => { button.disabled = true; reason.disabled = true; };
  return form;
}

async function list(main) {
  const body = h('tbody');
  const draw = async () => {
    const sessions = await get('/api/v1/sessions');
    clear(body, ...sessions.map((s) => h('tr', { 'data-session': s.id },
      h('td', {}, fmtTime(s.startedAt)), h('td', {}, s.user), h('td', {}, s.target, h('span', { class: 'muted' }, ` as ${s.login}`)),
      h('td', {}, h('span', { class: `badge ${s.protocol}` }, s.protocol)), h('td', {}, s.clientAddress ?? ''),
      h('td', { class: 'actions' }, h('a', { href: `#/live/${encodeURIComponent(s.id)}`, class: 'watch' }, 'Watch')))));
    if (!sessions.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No live sessions.')));
  };
  clear(main, h('h1', {}, 'Live sessions'), h('table', { class: 'grid', id: 'live-sessions' },
    h('thead', {}, h('tr', {}, ...['Started', 'User', 'Target', 'Protocol', 'Client', ''].map((t) => h('th', {}, t)))), body));
  await draw();
  const timer = setInterval(() => void draw().catch(() => undefined), 2000);
  return () => clearInterval(timer);
}

export async function render(main, { params }) {
  const id = params[0];
  if (!id) return list(main);
  const info = (await get('/api/v1/sessions')).find((s) => s.id === id);
  if (!info) {
    clear(main, notice('This session is not live any more.'), h('p', {}, h('a', { href: '#/sessions' }, 'Back to sessions')));
    return undefined;
  }
  const state = h('span', { class: 'badge live', id: 'live-state' }, 'connecting');
  const markers = h('ol', { class: 'markers', id: 'live-markers' });
  const view = h('div', { class: 'live-view', id: 'live-view' });
  const ended = (label) => {
    state.textContent = 'ended';
    state.className = 'badge';
    kill.ended();
    if (label) markers.append(h('li', { class: 'deny' }, label));
  };
  const kill = killForm(id, (why) => ended(`terminated by you: ${why}`));
  clear(main,
    h('h1', {}, `${info.user}@${info.target}`, h('span', { class: 'muted' }, ` as ${info.login}`), ' ', state),
    h('p', { class: 'meta' }, h('span', { class: `badge ${info.protocol}` }, info.protocol), ` started ${fmtTime(info.startedAt)} · recording `,
      h('a', { href: `#/recording/${encodeURIComponent(info.recordingId)}` }, info.recordingId)),
    kill,
    h('div', { class: 'replay' }, view, h('aside', {}, h('section', { class: 'panel' }, h('h2', {}, 'Markers'), markers))));

  let term;
  let stmts;
  if (info.protocol === 'ssh') {
    cspSafeXterm();
    const { Terminal } = await import('/vendor/xterm.mjs');
    term = new Terminal({ convertEol: false, disableStdin: true, cursorBlink: false, scrollback: 5000, fontSize: 14 });
    term.open(view);
  } else {
    stmts = h('tbody');
    view.append(h('table', { class: 'grid', id: 'live-statements' },
      h('thead', {}, h('tr', {}, ...['Time', 'SQL', 'Duration', 'Rows', 'SQLSTATE', 'Verdict'].map((t) => h('th', {}, t)))), stmts));
  }
  const onLine = (line) => {
    let e;
    try { e = JSON.parse(line); } catch { return; }
    if (term) {
      if (!Array.isArray(e)) {
        if (e.width && e.height) term.resize(Math.min(e.width, 500), Math.min(e.height, 200));
        return;
      }
      const [, type, data] = e;
      if (type === 'o') term.write(data);
      else if (type === 'r') {
        const [c, r] = String(data).split('x').map(Number);
        if (c > 0 && r > 0) term.resize(Math.min(c, 500), Math.min(r, 200));
      } else if (type === 'm') markers.append(h('li', { class: /^(denied|refused)/.test(data) ? 'deny' : '' }, data));
    } else if (e.type === 'statement' || e.type === 'alert') {
      const v = e.verdict;
      stmts.append(h('tr', { class: v?.action === 'deny' ? 'has-denials' : undefined },
        h('td', {}, fmtTime(e.t)), h('td', {}, h('pre', { class: 'sql' }, e.sql ?? '')), h('td', { class: 'num' }, e.duration_ms === undefined ? '' : `${e.duration_ms} ms`),
        h('td', { class: 'num' }, e.rows ?? ''), h('td', {}, e.error?.sqlstate ?? ''), h('td', {}, v ? h('span', { class: `badge ${v.action}` }, v.action) : '')));
    } else if (e.type === 'start' || e.type === 'end') {
      markers.append(h('li', {}, e.type, e.reason ? `: ${e.reason}` : ''));
    }
  };
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/live/${encodeURIComponent(id)}`);
  ws.onopen = () => { state.textContent = 'live'; };
  ws.onmessage = (m) => {
    for (const line of String(m.data).split('\n')) {
      if (line === '{"type":"end"}') { ended(); continue; }
      onLine(line);
    }
  };
  ws.onclose = () => {
    if (state.textContent !== 'ended') { state.textContent = 'disconnected'; state.className = 'badge'; }
  };
  return () => {
    ws.close();
    term?.dispose();
  };
}
