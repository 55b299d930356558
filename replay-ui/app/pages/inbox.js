import { h, clear, notice, fmtTime } from '../dom.js';
import { get, post } from '../api.js';

function minutes(ms) {
  const m = Math.round(ms / 60000);
  return m >= 60 ? `${(m / 60).toFixed(m % 60 ? 1 : 0)} h` : `${m} min`;
}

function decide(path, id, onDone) {
  const reason = h('input', { class: 'reason', placeholder: 'reason', 'aria-label': 'reason' });
  const msg = h('span');
  const act = async (verb) => {
    if (verb === 'deny' && !reason.value.trim()) { clear(msg, notice('A reason is required to deny.', 'error')); return; }
    try {
      await post(`/api/v1/${path}/${encodeURIComponent(id)}/${verb}`, reason.value.trim() ? { reason: reason.value.trim() } : {});
      clear(msg, h('span', { class: 'ok' }, verb === 'approve' ? 'Approved.' : 'Denied.'));
      setTimeout(onDone, 600);
    } catch (err) {
      clear(msg, notice(err.message, 'error'));
    }
  };
  return h('div', { class: 'decide' }, reason,
    h('button', { type: 'button', class: 'approve', onclick: () => void act('approve') }, 'Approve'),
    h('button', { type: 'button', class: 'danger deny', onclick: () => void act('deny') }, 'Deny'), msg);
}

export async function render(main, { me }) {
  const reqBody = h('tbody');
  const holdBody = h('tbody');
  const recent = h('tbody');
  const draw = async () => {
    const [requests, holds] = await Promise.all([get('/api/v1/requests'), get('/api/v1/holds').catch(() => [])]);
    const pending = requests.filter((r) => r.status === 'pending');
    clear(reqBody, ...pending.map((r) => h('tr', { 'data-request': r.id },
      h('td', {}, fmtTime(new Date(r.createdAt).toISOString())), h('td', {}, r.user, h('div', { class: 'muted small' }, r.roles.join(', '))),
      h('td', {}, `${r.login}@${r.target}`), h('td', {}, minutes(r.durationMs)), h('td', { class: 'reason-text' }, r.reason),
      h('td', {}, r.subject === me.subject || r.user === me.user ? h('span', { class: 'muted' }, 'your own request') : decide('requests', r.id, () => void draw())))));
    if (!pending.length) reqBody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No pending requests.')));
    const waiting = holds.filter((x) => x.status === 'pending');
    clear(holdBody, ...waiting.map((x) => h('tr', { 'data-hold': x.id },
      h('td', {}, fmtTime(new Date(x.createdAt).toISOString())), h('td', {}, x.user), h('td', {}, `${x.login}@${x.target}`),
      h('td', {}, h('pre', { class: 'sql' }, x.text), x.rule ? h('div', { class: 'muted small' }, `rule ${x.rule}`, x.message ? `: ${x.message}` : '') : null),
      h('td', {}, fmtTime(new Date(x.expiresAt).toISOString())), h('td', {}, decide('holds', x.id, () => void draw())))));
    if (!waiting.length) holdBody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Nothing is held for review.')));
    const decided = requests.filter((r) => r.status !== 'pending').slice(0, 20);
    clear(recent, ...decided.map((r) => h('tr', {}, h('td', {}, fmtTime(new Date(r.decidedAt ?? r.createdAt).toISOString())), h('td', {}, r.user), h('td', {}, `${r.login}@${r.target}`),
      h('td', {}, h('span', { class: `badge ${r.status === 'approved' ? 'allow' : 'deny'}` }, r.status)), h('td', {}, r.decidedBy ?? ''), h('td', {}, r.decisionReason ?? ''))));
  };
  clear(main,
    h('h1', {}, 'Inbox'),
    h('h2', {}, 'Access requests'),
    h('table', { class: 'grid', id: 'requests' }, h('thead', {}, h('tr', {}, ...['Asked', 'User', 'Login', 'For', 'Reason', 'Decision'].map((t) => h('th', {}, t)))), reqBody),
    h('h2', {}, 'Held commands and statements'),
    h('table', { class: 'grid', id: 'holds' }, h('thead', {}, h('tr', {}, ...['Held', 'User', 'Login', 'Command / SQL', 'Expires', 'Decision'].map((t) => h('th', {}, t)))), holdBody),
    h('h2', {}, 'Recently decided'),
    h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, ...['When', 'User', 'Login', 'Status', 'By', 'Reason'].map((t) => h('th', {}, t)))), recent));
  await draw();
  // A failed refresh says so (a signed-out session is handled by app.js, which stops this page).
  const status = h('div', { id: 'inbox-status' });
  main.insertBefore(status, main.children[1] ?? null);
  const timer = setInterval(() => {
    if (main.contains(document.activeElement) && document.activeElement !== document.body) return;
    void draw().then(() => clear(status), (err) => clear(status, notice(`Could not refresh the inbox: ${err.message ?? err}. Retrying.`, 'error')));
  }, 4000);
  return () => clearInterval(timer);
}
