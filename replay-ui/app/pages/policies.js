import { h, clear, notice, fmtTime } from '../dom.js';
import { get, post, put } from '../api.js';
import { diffView, threeWayView } from './policy-diff.js';
import { whatIf } from './policy-what-if.js';
import { loadDraft, saveDraft, dropDraft } from './policy-draft-store.js';

export { diffLines } from './policy-diff.js';

const fileUrl = (name) => `/api/v1/policy/files/${encodeURIComponent(name)}`;
const short = (sha) => (sha ? sha.slice(0, 10) : 'none');

/** A textarea with a line-number gutter; `mark(line)` flags the line an error points at. */
function codeEditor() {
  const editor = h('textarea', { id: 'policy-editor', spellcheck: 'false', rows: 28, 'aria-label': 'policy file' });
  editor.wrap = 'off';
  const gutter = h('pre', { class: 'gutter', id: 'policy-gutter', 'aria-hidden': 'true' });
  let marked;
  const draw = () => {
    const n = editor.value.split('\n').length;
    if (gutter.childElementCount !== n) clear(gutter, ...Array.from({ length: n }, (_, i) => h('span', { class: i + 1 === marked ? 'ln err' : 'ln' }, `${i + 1}\n`)));
    gutter.scrollTop = editor.scrollTop;
  };
  editor.addEventListener('input', draw);
  editor.addEventListener('scroll', () => { gutter.scrollTop = editor.scrollTop; });
  const mark = (line) => {
    marked = line ?? undefined;
    for (const [i, el] of [...gutter.children].entries()) el.classList.toggle('err', i + 1 === marked);
  };
  return { editor, box: h('div', { class: 'code' }, gutter, editor), draw, mark };
}

export async function render(main, { me, params, guardLeave }) {
  const [files, targets] = await Promise.all([get('/api/v1/policy/files'), get('/api/v1/targets').catch(() => [])]);
  const fileList = h('ul', { class: 'files', id: 'policy-files' });
  const { editor, box, draw, mark } = codeEditor();
  const status = h('div', { id: 'policy-status', role: 'status' });
  const publishBox = h('div', { id: 'publish-result', role: 'status' });
  const draftNote = h('div', { id: 'draft-note' });
  const message = h('input', { id: 'policy-message', placeholder: 'what changed and why' });
  const historyBox = h('ol', { class: 'history', id: 'policy-history' });
  const diffBox = h('div');
  const title = h('h2');
  const newName = h('input', { id: 'new-file', placeholder: 'new-file.yaml' });
  let name = '';
  /** What the draft started from: the published version when it was opened (or rebased onto). */
  let base = { content: '', sha256: undefined };
  let timer;
  let lastCheck = 0;

  const dirty = () => !!name && editor.value !== base.content;
  const leaveMessage = () => (dirty() ? `${name} has unsaved changes. Leave anyway? (Your draft stays in this browser until you publish or discard it.)` : undefined);
  const confirmLeave = () => { const m = leaveMessage(); return !m || window.confirm(m); };
  const onBeforeUnload = (e) => { if (dirty()) { e.preventDefault(); e.returnValue = leaveMessage(); } };
  window.addEventListener('beforeunload', onBeforeUnload);
  guardLeave?.(leaveMessage);

  const keepDraft = () => {
    if (dirty()) saveDraft(me, name, { content: editor.value, baseSha256: base.sha256 ?? '', baseContent: base.content });
    else dropDraft(me, name);
  };

  const validate = async () => {
    const seq = ++lastCheck;
    try {
      const r = await post('/api/v1/policy/validate', { name, content: editor.value });
      if (seq !== lastCheck) return;
      mark(r.ok ? undefined : r.line);
      clear(status, r.ok ? h('span', { class: 'ok', id: 'valid' }, `Valid: ${r.rules} rules and ${r.roles} roles across all files.`)
        : h('pre', { class: 'error', id: 'invalid' }, r.line ? `line ${r.line}: ` : '', r.error));
    } catch (err) {
      if (seq === lastCheck) clear(status, notice(err.message, 'error'));
    }
  };
  /** A validation still waiting or under way must not write over what a publish says. */
  const stopValidation = () => { clearTimeout(timer); lastCheck++; };
  editor.addEventListener('input', () => {
    keepDraft();
    clearTimeout(timer);
    timer = setTimeout(() => void validate(), 300);
    clear(diffBox);
  });

  const loadHistory = async () => {
    const versions = base.sha256 ? await get(`${fileUrl(name)}/history`) : [];
    clear(historyBox, ...versions.map((v) => h('li', {},
      h('button', { type: 'button', class: 'link', onclick: async () => {
        const old = await get(`${fileUrl(name)}/history/${encodeURIComponent(v.version)}`);
        clear(diffBox, diffView(old.content, editor.value, `${v.version} by ${v.author}`, 'editor'),
          h('button', { type: 'button', onclick: () => { editor.value = old.content; editor.dispatchEvent(new Event('input')); } }, 'Load this version into the editor'));
      } }, fmtTime(v.time)), ` ${v.author}`, v.message ? h('span', { class: 'muted' }, ` — ${v.message}`) : '', h('code', { class: 'muted small' }, ` ${v.sha256.slice(0, 10)}`))));
    if (!versions.length) historyBox.append(h('li', { class: 'muted' }, 'No versions published through the UI yet.'));
  };

  /** The published file now (the API sends no-store, so never a cached copy). */
  const fetchPublished = async (n) => {
    try {
      return await get(fileUrl(n));
    } catch (err) {
      if (err.status === 404) return { name: n, content: '', sha256: undefined };
      throw err;
    }
  };

  const setEditor = (content) => { editor.value = content; draw(); };

  const open = async (n) => {
    stopValidation();
    name = n;
    const published = await fetchPublished(n);
    base = { content: published.content, sha256: published.sha256 };
    const kept = loadDraft(me, n);
    clear(draftNote);
    clear(publishBox);
    if (kept && kept.content !== published.content) {
      base = { content: kept.baseContent, sha256: kept.baseSha256 || undefined };
      setEditor(kept.content);
      const moved = (kept.baseSha256 || undefined) !== published.sha256;
      clear(draftNote, h('div', { class: 'notice', id: 'draft-restored' }, `Restored your unsaved draft of ${n} from ${fmtTime(kept.savedAt)}.`,
        moved ? ` ${n} was published again since you started it: publishing will show both changes.` : '', ' ',
        h('button', { type: 'button', class: 'link', id: 'draft-discard', onclick: () => { dropDraft(me, n); void open(n); } }, 'Discard the draft')));
    } else {
      if (kept) dropDraft(me, n);
      setEditor(published.content);
    }
    clear(title, n);
    history.replaceState(null, '', `#/policies/${encodeURIComponent(n)}`);
    for (const li of fileList.children) li.classList.toggle('active', li.dataset.name === n);
    clear(diffBox);
    await Promise.all([validate(), loadHistory()]);
  };

  const showConflict = async (why) => {
    const fresh = await fetchPublished(name);
    const versions = fresh.sha256 ? await get(`${fileUrl(name)}/history`).catch(() => []) : [];
    const by = versions[0] && versions[0].sha256 === fresh.sha256 ? ` (by ${versions[0].author}, ${fmtTime(versions[0].time)})` : '';
    const theirsLabel = `published now ${short(fresh.sha256)}${by}`;
    void loadHistory().catch(() => undefined);
    clear(publishBox, h('div', { class: 'conflict', id: 'conflict' },
      notice(`Not published: ${why}. ${name} was published${by} since you started from ${short(base.sha256)}. Compare the three versions, then choose.`, 'error'),
      threeWayView({ base: base.content, mine: editor.value, theirs: fresh.content, theirsLabel }),
      h('div', { class: 'row' },
        h('button', { type: 'button', id: 'conflict-rebase', onclick: () => {
          base = { content: fresh.content, sha256: fresh.sha256 };
          keepDraft();
          clear(publishBox, notice(`Your draft now replaces ${theirsLabel}. Merge what you need from it, then publish again.`));
        } }, 'Keep my draft and publish it over the new version'),
        h('button', { type: 'button', id: 'conflict-take-theirs', onclick: () => { if (window.confirm('Drop your draft and load the published version?')) { dropDraft(me, name); void open(name); } } }, 'Drop my draft, load the published version'))));
  };

  const publish = async () => {
    stopValidation();
    clear(publishBox, h('span', { class: 'muted' }, 'Publishing…'));
    try {
      const v = await put(fileUrl(name), { content: editor.value, base_sha256: base.sha256 ?? '', message: message.value });
      base = { content: editor.value, sha256: v.sha256 };
      dropDraft(me, name);
      clear(draftNote);
      clear(publishBox, h('span', { class: 'ok', id: 'published' }, `Published version ${v.version} (${v.rules} rules). The proxy applies it within about a second.`));
      message.value = '';
      await loadHistory();
    } catch (err) {
      if (err.status === 409) await showConflict(err.message).catch((e) => clear(publishBox, notice(`${err.message} (and the published version could not be read: ${e.message})`, 'error')));
      else clear(publishBox, h('div', { id: 'publish-error' }, notice(`Not published: ${err.message}`, 'error')));
    }
  };

  const diffWithPublished = async () => {
    const fresh = await fetchPublished(name);
    if (fresh.sha256 !== base.sha256) {
      clear(diffBox, notice(`${name} was published again since you started from ${short(base.sha256)}.`),
        threeWayView({ base: base.content, mine: editor.value, theirs: fresh.content, theirsLabel: `published now ${short(fresh.sha256)}` }));
    } else clear(diffBox, diffView(fresh.content, editor.value, `${name} published ${short(fresh.sha256)}`, 'your draft'));
  };

  const openChecked = (n) => { if (n === name || confirmLeave()) void open(n); };
  for (const f of files) fileList.append(h('li', { 'data-name': f.name }, h('button', { type: 'button', class: 'link', onclick: () => openChecked(f.name) }, f.name)));

  clear(main,
    h('h1', {}, 'Policies'),
    h('div', { class: 'policy' },
      h('aside', {}, h('section', { class: 'panel' }, h('h2', {}, 'Files'), fileList,
        h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); if (/^[A-Za-z0-9][A-Za-z0-9_.-]*\.ya?ml$/.test(newName.value)) openChecked(newName.value); } }, newName, h('button', { type: 'submit' }, 'New'))),
      h('section', { class: 'panel' }, h('h2', {}, 'History'), historyBox)),
      h('section', { class: 'editor' }, title, draftNote, box, status,
        h('div', { class: 'row' }, message,
          h('button', { type: 'button', id: 'policy-diff', onclick: () => void diffWithPublished().catch((e) => clear(diffBox, notice(e.message, 'error'))) }, 'Diff with published'),
          h('button', { type: 'button', id: 'policy-publish', class: 'primary', onclick: () => void publish() }, 'Validate and publish')),
        publishBox, diffBox),
      h('section', {}, whatIf(targets, () => (name ? { name, content: editor.value } : undefined)))));
  const first = params[0] && files.some((f) => f.name === params[0]) ? params[0] : (params[0] && loadDraft(me, params[0]) ? params[0] : files[0]?.name);
  if (first) await open(first);
  return () => {
    clearTimeout(timer);
    window.removeEventListener('beforeunload', onBeforeUnload);
  };
}
