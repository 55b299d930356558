import { h, clear, notice, fmtTime } from '../dom.js';
import { get, post, put } from '../api.js';

/** Line diff (LCS); fine for rule files of a few thousand lines. */
export function diffLines(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length * y.length > 4_000_000) return [{ op: ' ', text: '(files too large to diff here)' }];
  const n = x.length;
  const m = y.length;
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: ' ', text: x[i] }); i++; j++; }
    else if (dp[i + 1][j] >= dp[i][j + 1]) out.push({ op: '-', text: x[i++] });
    else out.push({ op: '+', text: y[j++] });
  }
  while (i < n) out.push({ op: '-', text: x[i++] });
  while (j < m) out.push({ op: '+', text: y[j++] });
  return out;
}

function diffView(a, b, labelA, labelB) {
  const lines = diffLines(a, b);
  const changed = lines.some((l) => l.op !== ' ');
  return h('div', { class: 'diff', id: 'diff' }, h('p', { class: 'muted' }, `--- ${labelA}`, h('br'), `+++ ${labelB}`),
    changed ? h('pre', {}, ...lines.map((l) => h('span', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same' }, `${l.op} ${l.text}\n`))) : h('p', {}, 'No differences.'));
}

function whatIf(targets) {
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
    const body = { user: user.value, groups: groups.value.split(',').map((g) => g.trim()).filter(Boolean), target: target.value, login: login.value };
    if (t?.protocol === 'postgres') body.sql = text.value; else body.command = text.value;
    try {
      const v = await post('/api/v1/policy/test', body);
      clear(out, h('p', {}, h('span', { class: `badge ${v.action}`, id: 'wi-action' }, v.action), v.rule ? ` by rule ${v.rule}` : ' (default)', v.message ? ` — ${v.message}` : ''),
        v.roles?.length ? h('p', { class: 'muted small' }, `roles: ${v.roles.join(', ')}`) : null);
    } catch (err) {
      clear(out, notice(err.message, 'error'));
    }
  } }, h('h2', {}, 'What-if tester (rules in force)'), h('div', { class: 'row' }, user, groups), h('div', { class: 'row' }, target, login), text,
  h('button', { type: 'submit', id: 'wi-go' }, 'Test'), out);
}

export async function render(main, { params }) {
  const [files, targets] = await Promise.all([get('/api/v1/policy/files'), get('/api/v1/targets').catch(() => [])]);
  const fileList = h('ul', { class: 'files', id: 'policy-files' });
  const editor = h('textarea', { id: 'policy-editor', spellcheck: 'false', rows: 28, 'aria-label': 'policy file' });
  const status = h('div', { id: 'policy-status', role: 'status' });
  const message = h('input', { id: 'policy-message', placeholder: 'what changed and why' });
  const historyBox = h('ol', { class: 'history', id: 'policy-history' });
  const diffBox = h('div');
  const title = h('h2');
  const newName = h('input', { id: 'new-file', placeholder: 'new-file.yaml' });
  let current = { name: '', content: '', sha256: undefined };
  let timer;
  let lastCheck = 0;

  const validate = async () => {
    const seq = ++lastCheck;
    try {
      const r = await post('/api/v1/policy/validate', { name: current.name, content: editor.value });
      if (seq !== lastCheck) return;
      clear(status, r.ok ? h('span', { class: 'ok', id: 'valid' }, `Valid: ${r.rules} rules and ${r.roles} roles across all files.`) : h('pre', { class: 'error', id: 'invalid' }, r.error));
    } catch (err) {
      clear(status, notice(err.message, 'error'));
    }
  };
  editor.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => void validate(), 300);
    clear(diffBox);
  });

  const loadHistory = async () => {
    const versions = current.sha256 ? await get(`/api/v1/policy/files/${encodeURIComponent(current.name)}/history`) : [];
    clear(historyBox, ...versions.map((v) => h('li', {},
      h('button', { type: 'button', class: 'link', onclick: async () => {
        const old = await get(`/api/v1/policy/files/${encodeURIComponent(current.name)}/history/${encodeURIComponent(v.version)}`);
        clear(diffBox, diffView(old.content, editor.value, `${v.version} by ${v.author}`, 'editor'),
          h('button', { type: 'button', onclick: () => { editor.value = old.content; editor.dispatchEvent(new Event('input')); } }, 'Load this version into the editor'));
      } }, fmtTime(v.time)), ` ${v.author}`, v.message ? h('span', { class: 'muted' }, ` — ${v.message}`) : '', h('code', { class: 'muted small' }, ` ${v.sha256.slice(0, 10)}`))));
    if (!versions.length) historyBox.append(h('li', { class: 'muted' }, 'No versions published through the UI yet.'));
  };

  const open = async (name) => {
    try {
      current = await get(`/api/v1/policy/files/${encodeURIComponent(name)}`);
    } catch {
      current = { name, content: '', sha256: undefined };
    }
    editor.value = current.content;
    clear(title, current.name);
    for (const li of fileList.children) li.classList.toggle('active', li.dataset.name === name);
    clear(diffBox);
    await Promise.all([validate(), loadHistory()]);
  };

  const publish = async () => {
    try {
      const v = await put(`/api/v1/policy/files/${encodeURIComponent(current.name)}`, { content: editor.value, base_sha256: current.sha256 ?? '', message: message.value });
      clear(status, h('span', { class: 'ok', id: 'published' }, `Published version ${v.version} (${v.rules} rules). The proxy applies it within about a second.`));
      message.value = '';
      current = await get(`/api/v1/policy/files/${encodeURIComponent(current.name)}`);
      await loadHistory();
    } catch (err) {
      clear(status, notice(err.message, 'error'));
    }
  };

  for (const f of files) fileList.append(h('li', { 'data-name': f.name }, h('button', { type: 'button', class: 'link', onclick: () => void open(f.name) }, f.name)));

  clear(main,
    h('h1', {}, 'Policies'),
    h('div', { class: 'policy' },
      h('aside', {}, h('section', { class: 'panel' }, h('h2', {}, 'Files'), fileList,
        h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); if (/^[A-Za-z0-9][A-Za-z0-9_.-]*\.ya?ml$/.test(newName.value)) void open(newName.value); } }, newName, h('button', { type: 'submit' }, 'New'))),
      h('section', { class: 'panel' }, h('h2', {}, 'History'), historyBox)),
      h('section', { class: 'editor' }, title, editor, status,
        h('div', { class: 'row' }, message,
          h('button', { type: 'button', id: 'policy-diff', onclick: () => clear(diffBox, diffView(current.content, editor.value, `${current.name} (in force)`, 'editor')) }, 'Diff with published'),
          h('button', { type: 'button', id: 'policy-publish', class: 'primary', onclick: () => void publish() }, 'Validate and publish')),
        diffBox),
      h('section', {}, whatIf(targets))));
  const first = params[0] && files.some((f) => f.name === params[0]) ? params[0] : files[0]?.name;
  if (first) await open(first);
  return () => clearTimeout(timer);
}
