import { h, clear, notice } from '../dom.js';
import { post } from '../api.js';

/** What the tester's verdict means for this person, in plain words: access first, then the rules. */
function column(title, id, v) {
  if (v.ok === false) return h('div', { class: 'wi-col', id }, h('h3', {}, title), notice(`The draft does not load, so it cannot be tested: ${v.error}`, 'error'));
  const a = v.access;
  const connects = a.state === 'grant';
  const ruling = `${v.action}${v.rule ? ` by rule ${v.rule}` : ' (the target\'s default)'}${v.message ? ` — ${v.message}` : ''}`;
  const headline = connects ? v.action : a.state === 'may-request' ? 'needs a grant' : 'no access';
  return h('div', { class: 'wi-col', id },
    h('h3', {}, title),
    h('p', {}, h('span', { class: `badge ${connects ? v.action : 'deny'}`, 'data-role': 'outcome' }, headline),
      connects ? ` by ${v.rule ? `rule ${v.rule}` : 'the target\'s default'}${v.message ? ` — ${v.message}` : ''}` : ''),
    h('p', { class: `wi-access ${a.state}`, 'data-role': 'access' }, a.words),
    a.state === 'may-request' ? h('p', { class: 'muted small', 'data-role': 'rules' }, `Once a grant is approved, the rules say: ${ruling}.`) : null,
    a.state === 'none' || a.state === 'unknown-login' ? h('p', { class: 'muted small', 'data-role': 'rules' }, 'The command rules are never reached.') : null,
    v.roles?.length ? h('p', { class: 'muted small' }, `roles: ${v.roles.join(', ')}`) : h('p', { class: 'muted small' }, 'roles: none'));
}

/**
 * The what-if tester: the draft in the editor (`draft()` gives { name, content }) and the rules
 * in force, each with the access check (grant, or a role that may request it).
 */
export function whatIf(targets, draft) {
  const user = h('input', { id: 'wi-user', placeholder: 'user', value: 'alice' });
  const groups = h('input', { id: 'wi-groups', placeholder: 'groups, comma-separated' });
  const target = h('select', { id: 'wi-target' }, ...targets.map((t) => h('option', { value: t.name, 'data-protocol': t.protocol }, `${t.name} (${t.protocol})`)));
  const login = h('input', { id: 'wi-login', placeholder: 'login' });
  const text = h('textarea', { id: 'wi-text', rows: 3, placeholder: 'a shell command line, or SQL for a Postgres target', spellcheck: 'false' });
  const out = h('div', { id: 'wi-result' });
  const fillLogin = () => {
    const t = targets.find((x) => x.name === target.value);
    if (t && !t.logins.includes(login.value)) login.value = t.logins[0] ?? '';
  };
  target.addEventListener('change', fillLogin);
  fillLogin();
  return h('form', { class: 'card stack', onsubmit: async (e) => {
    e.preventDefault();
    const t = targets.find((x) => x.name === target.value);
    const body = { user: user.value, groups: groups.value.split(',').map((g) => g.trim()).filter(Boolean), target: target.value, login: login.value, draft: draft() };
    if (t?.protocol === 'postgres') body.sql = text.value; else body.command = text.value;
    try {
      const v = await post('/api/v1/policy/test', body);
      const d = v.draft ?? v;
      const outcome = d.ok === false ? 'draft error' : d.access.state === 'grant' ? d.action : d.access.state === 'may-request' ? 'needs a grant' : 'no access';
      clear(out, h('p', {}, 'Draft: ', h('strong', { id: 'wi-action' }, outcome)),
        h('div', { class: 'wi-cols' }, column('Draft in the editor', 'wi-draft', d), column('Rules in force', 'wi-published', v)));
    } catch (err) {
      clear(out, notice(err.message, 'error'));
    }
  } }, h('h2', {}, 'What-if tester'), h('p', { class: 'muted small' }, 'Tests the draft in the editor and the published rules, including whether the person could connect at all.'),
  h('div', { class: 'row' }, user, groups), h('div', { class: 'row' }, target, login), text,
  h('button', { type: 'submit', id: 'wi-go' }, 'Test'), out);
}
