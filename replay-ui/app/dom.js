// DOM helpers. Recorded content is hostile: every string becomes a text node (textContent),
// attributes come from a fixed list, and links may only point inside the app.

const ATTRS = new Set(['class', 'id', 'type', 'name', 'value', 'placeholder', 'title', 'for', 'rows', 'cols', 'min', 'max', 'step', 'autocomplete', 'spellcheck', 'role', 'download', 'checked', 'selected', 'disabled', 'required', 'readonly', 'colspan']);

/** h('div', { class: 'x', onclick: fn }, 'text', child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'href') el.setAttribute('href', safeHref(String(v)));
    else if (k.startsWith('data-') || k.startsWith('aria-') || ATTRS.has(k)) el.setAttribute(k, v === true ? '' : String(v));
    else throw new Error(`attribute ${k} is not allowed`);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Only in-app hash links and same-origin API paths. */
export function safeHref(v) {
  if (v.startsWith('#/') || v.startsWith('/api/v1/')) return v;
  return '#/';
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtOffset(sec) {
  const s = Math.max(0, Number(sec) || 0);
  const m = Math.floor(s / 60);
  const r = (s - m * 60).toFixed(1).padStart(4, '0');
  return `${m}:${r}`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function notice(text, kind = 'info') {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Reads the hash route: #/path/a/b?x=1 → { parts: ['path','a','b'], query } */
export function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(qs ?? '') };
}
