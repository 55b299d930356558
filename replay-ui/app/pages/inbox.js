import { h, clear, notice, fmtTime } from '../dom.js';
import { get, post } from '../api.js';

function minutes(ms) {
  const m = Math.round(ms / 60000);
  return m >= 60 ? `${(m / 60).toFixed(m % 60 ? 1 : 0)} h` : `${m} min`;
}

/** "4 min 12 s": how long an item has waited, from the server's clock. */
export function waited(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Shorter durations an approver may pick for a request of `askedMs` (the asked one first). */
function durationChoices(askedMs) {
  const steps = [15, 30, 60, 120, 240, 480].map((m) => m * 60000).filter((ms) => ms < askedMs);
  return [askedMs, ...steps.reverse()];
}

function decide(path, id, onDone, askedMs) {
  const reason = h('input', { class: 'reason', placeholder: 'reason', 'aria-label': 'reason' });
  const duration = askedMs ? h('select', { class: 'duration', 'aria-label': 'grant for' },
    ...durationChoices(askedMs).map((ms, i) => h('option', { value: `${Math.round(ms / 60000)}m` }, i === 0 ? `${minutes(ms)} (as asked)` : minutes(ms)))) : null;
  const msg = h('span');
  const act = async (verb) => {
    if (verb === 'deny' && !reason.value.trim()) { clear(msg, notice('A reason is required to deny.', 'error')); return; }
    const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
    if (verb === 'approve' && duration && duration.selectedIndex > 0) body.duration = duration.value;
    try {
      await post(`/api/v1/${path}/${encodeURIComponent(id)}/${verb}`, body);
      clear(msg, h('span', { class: 'ok' }, verb === 'approve' ? 'Approved.' : 'Denied.'));
      setTimeout(onDone, 600);
    } catch (err) {
      clear(msg, notice(err.message, 'error'));
    }
  };
  return h('div', { class: 'decide' }, reason, duration,
    h('button', { type: 'button', class: 'approve', onclick: () => void act('approve') }, 'Approve'),
    h('button', { type: 'button', class: 'danger deny', onclick: () => void act('deny') }, 'Deny'), msg);
}

/** The requester's grants and latest sessions, and for a hold the session's latest commands. */
function contextView(ctx, canWatch) {
  if (!ctx) return h('p', { class: 'muted small' }, 'Context is shown to those who may decide.');
  const grants = ctx.grants.length
    ? h('ul', { class: 'ctx-grants' }, ...ctx.grants.map((g) => h('li', {}, `${g.login}@${g.target} until ${fmtTime(g.expires_at)} (by ${g.approved_by})`)))
    : h('p', { class: 'muted small ctx-grants' }, 'No active grants.');
  const sessions = ctx.sessions.length
    ? h('ul', { class: 'ctx-sessions' }, ...ctx.sessions.map((s) => h('li', {},
      canWatch ? h('a', { href: s.status === 'live' ? `#/live/${encodeURIComponent(s.id)}` : `#/recording/${encodeURIComponent(s.id)}` }, `${s.login}@${s.target}`) : `${s.login}@${s.target}`,
      ` ${fmtTime(s.start)}`, s.status === 'live' ? h('span', { class: 'badge live' }, 'live') : h('span', { class: 'muted' }, ` ${s.end_reason ?? s.status}`))))
    : h('p', { class: 'muted small ctx-sessions' }, 'No recent sessions.');
  const commands = ctx.recent_commands === undefined ? null : ctx.recent_commands === null
    ? h('p', { class: 'muted small' }, 'Recent commands are not available (no search index).')
    : ctx.recent_commands.length
      ? h('ol', { class: 'ctx-commands' }, ...ctx.recent_commands.map((c) => h('li', { class: c.verdict }, h('code', {}, c.text), h('span', { class: 'muted small' }, ` ${fmtTime(c.time)} ${c.verdict}`))))
      : h('p', { class: 'muted small ctx-commands' }, 'No commands in this session before it.');
  const box = h('details', { class: 'ctx' }, h('summary', {}, 'Context'),
    commands ? h('div', {}, h('strong', {}, 'This session\'s recent commands'), commands) : null,
    h('div', {}, h('strong', {}, 'Active grants'), grants), h('div', {}, h('strong', {}, 'Recent sessions'), sessions));
  box.open = true;
  return box;
}

const who = (x) => [x.user, h('div', { class: 'muted small' }, x.roles.join(', '))];

export async function render(main, { me }) {
  const reqBody = h('tbody');
  const holdBody = h('tbody');
  const recent = h('tbody');
  const status = h('div', { id: 'inbox-status' });
  // Waiting times tick between refreshes from the server's clock, not the browser's.
  let skew = 0;
  const tick = () => {
    for (const el of main.querySelectorAll('[data-since]')) el.textContent = waited(Date.now() + skew - Date.parse(el.dataset.since));
  };
  const draw = async () => {
    const box = await get('/api/v1/inbox');
    skew = Date.parse(box.now) - Date.now();
    window.dispatchEvent(new CustomEvent('pam:inbox-count', { detail: box.pending }));
    clear(reqBody, ...box.requests.map((r) => h('tr', { 'data-request': r.id },
      h('td', {}, fmtTime(r.created_at), h('div', { class: 'waited' }, 'waiting ', h('span', { 'data-since': r.created_at }, waited(r.waited_ms)))),
      h('td', {}, ...who(r)), h('td', {}, `${r.login}@${r.target}`), h('td', {}, minutes(r.duration_ms)), h('td', { class: 'reason-text' }, r.reason),
      h('td', {}, contextView(r.context, me.can.audit)),
      h('td', {}, r.own ? h('span', { class: 'muted' }, 'your own request') : r.can_decide ? decide('requests', r.id, () => void draw(), r.duration_ms) : h('span', { class: 'muted' }, 'not yours to decide')))));
    if (!box.requests.length) reqBody.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No pending requests.')));
    clear(holdBody, ...box.holds.map((x) => h('tr', { 'data-hold': x.id },
      h('td', {}, fmtTime(x.created_at), h('div', { class: 'waited' }, 'waiting ', h('span', { 'data-since': x.created_at }, waited(x.waited_ms))),
        h('div', { class: 'muted small' }, `times out ${fmtTime(x.expires_at)}`)),
      h('td', {}, ...who(x)),
      h('td', {}, `${x.login}@${x.target}`, x.session ? h('div', {}, x.session.live && me.can.audit
        ? h('a', { class: 'watch', href: `#/live/${encodeURIComponent(x.session.id)}` }, 'Watch the session live')
        : h('span', { class: 'muted small' }, x.session.live ? `session ${x.session.id} (watching needs can_audit)` : 'session ended')) : null),
      h('td', {}, h('pre', { class: 'sql' }, x.text), x.rule ? h('div', { class: 'muted small' }, `rule ${x.rule}`, x.message ? `: ${x.message}` : '') : null),
      h('td', {}, contextView(x.context, me.can.audit)),
      h('td', {}, x.own ? h('span', { class: 'muted' }, 'your own command') : x.can_decide ? decide('holds', x.id, () => void draw()) : h('span', { class: 'muted' }, 'not yours to decide')))));
    if (!box.holds.length) holdBody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Nothing is held for review.')));
    clear(recent, ...box.history.map((d) => h('tr', { 'data-decided': d.id },
      h('td', {}, fmtTime(d.decided_at)), h('td', {}, d.kind === 'hold' ? 'held command' : 'access request'), h('td', {}, d.user), h('td', {}, `${d.login}@${d.target}`),
      h('td', {}, d.kind === 'hold' ? h('code', {}, d.what) : d.what,
        d.kind === 'request' && d.granted_ms && d.granted_ms !== d.asked_ms ? h('div', { class: 'muted small granted' }, `granted ${minutes(d.granted_ms)} of ${minutes(d.asked_ms)} asked`) : null),
      h('td', {}, h('span', { class: `badge outcome ${d.outcome === 'approved' ? 'allow' : d.outcome === 'denied' ? 'deny' : 'review'}` }, d.outcome)),
      h('td', { class: 'decided-by' }, d.decided_by ?? (d.outcome === 'expired' ? 'nobody (timed out)' : '')), h('td', {}, d.reason ?? ''))));
    if (!box.history.length) recent.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'Nothing decided yet.')));
  };
  clear(main,
    h('h1', {}, 'Inbox'),
    status,
    h('h2', {}, 'Held commands and statements'),
    h('table', { class: 'grid', id: 'holds' }, h('thead', {}, h('tr', {}, ...['Held', 'User', 'Where', 'Command / SQL', 'Context', 'Decision'].map((t) => h('th', {}, t)))), holdBody),
    h('h2', {}, 'Access requests'),
    h('table', { class: 'grid', id: 'requests' }, h('thead', {}, h('tr', {}, ...['Asked', 'User', 'Login', 'For', 'Reason', 'Context', 'Decision'].map((t) => h('th', {}, t)))), reqBody),
    h('h2', {}, 'Decided'),
    h('table', { class: 'grid', id: 'history' }, h('thead', {}, h('tr', {}, ...['When', 'What', 'User', 'Login', 'Asked', 'Outcome', 'By', 'Reason'].map((t) => h('th', {}, t)))), recent));
  await draw();
  const ticker = setInterval(tick, 1000);
  // A failed refresh says so (a signed-out session is handled by app.js, which stops this page).
  const timer = setInterval(() => {
    if (main.contains(document.activeElement) && document.activeElement !== document.body) return;
    void draw().then(() => clear(status), (err) => clear(status, notice(`Could not refresh the inbox: ${err.message ?? err}. Retrying.`, 'error')));
  }, 4000);
  return () => { clearInterval(timer); clearInterval(ticker); };
}
