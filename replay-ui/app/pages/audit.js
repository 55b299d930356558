import { h, clear, notice, fmtTime } from '../dom.js';
import { get } from '../api.js';

// The audit log (GET /api/v1/audit), filtered by actor, event, target and time, each event
// linked to its recording or live session; the verify button asks GET /api/v1/audit/verify.

const text = (v) => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const SHOWN = ['type', 'actor', 'user', 'target', 'login', 'recording', 'session', 'ts', 'time', 'seq', 'hash', 'prev'];

function link(e) {
  if (typeof e.recording === 'string') return h('a', { href: `#/recording/${encodeURIComponent(e.recording)}`, class: 'rec-link' }, 'recording');
  if (typeof e.session === 'string') return h('a', { href: `#/live/${encodeURIComponent(e.session)}` }, 'session');
  return '';
}

export async function render(main, { query }) {
  const actor = h('input', { id: 'audit-actor', placeholder: 'actor', value: query.get('actor') ?? '' });
  const type = h('input', { id: 'audit-type', placeholder: 'event (e.g. denied, session.kill)', value: query.get('type') ?? '' });
  const target = h('input', { id: 'audit-target', placeholder: 'target', value: query.get('target') ?? '' });
  const since = h('select', { id: 'audit-since' }, ...['1h', '24h', '7d', '30d', ''].map((s) => h('option', { value: s, selected: s === (query.get('since') ?? '24h') }, s ? `last ${s}` : 'all time')));
  const body = h('tbody');
  const count = h('span', { class: 'muted' });
  const verdict = h('span', { id: 'audit-verdict' });
  let events = [];
  const draw = () => {
    const a = actor.value.trim().toLowerCase();
    const t = type.value.trim().toLowerCase();
    const g = target.value.trim().toLowerCase();
    const rows = events.filter((e) => (!a || text(e.actor).toLowerCase().includes(a)) && (!t || text(e.type).toLowerCase().includes(t)) && (!g || text(e.target).toLowerCase().includes(g)));
    clear(count, ` ${rows.length} of ${events.length} events`);
    clear(body, ...rows.slice(-1000).reverse().map((e) => {
      const rest = Object.entries(e).filter(([k]) => !SHOWN.includes(k)).map(([k, v]) => `${k}=${text(v)}`).join(' ');
      return h('tr', { class: /denied|refused|kill|revoke/.test(text(e.type)) ? 'has-denials' : undefined },
        h('td', {}, e.ts || e.time ? fmtTime(e.ts ?? e.time) : ''), h('td', {}, h('code', {}, text(e.type))), h('td', {}, text(e.actor)),
        h('td', {}, text(e.target), e.login ? h('span', { class: 'muted' }, ` as ${text(e.login)}`) : ''), h('td', {}, text(e.user)),
        h('td', { class: 'small' }, rest), h('td', {}, link(e)));
    }));
  };
  const load = async () => {
    events = await get(`/api/v1/audit${since.value ? `?since=${encodeURIComponent(since.value)}` : ''}`);
    draw();
  };
  const verify = async () => {
    clear(verdict, 'verifying…');
    try {
      const v = await get('/api/v1/audit/verify');
      clear(verdict, v.ok ? h('span', { class: 'badge allow', id: 'chain-ok' }, `chain intact · ${v.recordings ?? 0} sealed recordings checked`) : h('span', { class: 'badge deny', id: 'chain-bad' }, `chain broken: ${v.why ?? 'see pam audit verify'}${v.where ? ` (${text(v.where)})` : ''}`),
        v.unsignedWarning ? h('div', { class: 'muted small' }, v.unsignedWarning) : '');
    } catch (err) {
      clear(verdict, notice(err.message, 'error'));
    }
  };
  for (const el of [actor, type, target]) el.addEventListener('input', draw);
  since.addEventListener('change', () => void load().catch((err) => clear(verdict, notice(err.message, 'error'))));
  clear(main, h('h1', {}, 'Audit log'),
    h('div', { class: 'controls' }, actor, type, target, since, h('button', { type: 'button', id: 'audit-verify', onclick: () => void verify() }, 'Verify chain'), verdict, count),
    h('table', { class: 'grid', id: 'audit' }, h('thead', {}, h('tr', {}, ...['Time', 'Event', 'Actor', 'Target', 'User', 'Details', ''].map((x) => h('th', {}, x)))), body));
  await load();
  return undefined;
}
