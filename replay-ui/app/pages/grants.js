import { h, clear, notice, fmtTime } from '../dom.js';
import { get, post } from '../api.js';

// Active grants (GET /api/v1/grants) with revoke (POST /api/v1/grants/:id/revoke), which ends
// the grant's live sessions (the brokers follow the revocation).

export async function render(main) {
  const body = h('tbody');
  const draw = async () => {
    const grants = await get('/api/v1/grants');
    clear(body, ...grants.map((g) => {
      const reason = h('input', { class: 'reason', placeholder: 'reason (audited)' });
      const msg = h('span');
      const button = h('button', { type: 'button', class: 'danger revoke', onclick: async () => {
        button.disabled = true;
        try {
          await post(`/api/v1/grants/${encodeURIComponent(g.id)}/revoke`, { reason: reason.value.trim() || undefined });
          clear(msg, h('span', { class: 'ok' }, 'Revoked: its live sessions are ended.'));
        } catch (err) {
          button.disabled = false;
          clear(msg, notice(err.message, 'error'));
        }
      } }, 'Revoke');
      return h('tr', { 'data-grant': g.id }, h('td', {}, g.user), h('td', {}, `${g.login}@${g.target}`), h('td', {}, g.approvedBy),
        h('td', {}, fmtTime(new Date(g.startsAt).toISOString())), h('td', {}, fmtTime(new Date(g.expiresAt).toISOString())), h('td', {}, reason, ' ', button, ' ', msg));
    }));
    if (!grants.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No active grants.')));
  };
  clear(main, h('h1', {}, 'Active grants'),
    h('table', { class: 'grid', id: 'grants' }, h('thead', {}, h('tr', {}, ...['User', 'Login', 'Approved by', 'From', 'Until', 'Revoke'].map((x) => h('th', {}, x)))), body));
  await draw();
  return undefined;
}
