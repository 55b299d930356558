import { h } from '../dom.js';

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

function diffPre(a, b) {
  const lines = diffLines(a, b);
  if (!lines.some((l) => l.op !== ' ')) return h('p', { class: 'muted' }, 'No differences.');
  return h('pre', {}, ...lines.map((l) => h('span', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same' }, `${l.op} ${l.text}\n`)));
}

/** Two versions, `a` → `b`. */
export function diffView(a, b, labelA, labelB, id = 'diff') {
  return h('div', { class: 'diff', id }, h('p', { class: 'muted' }, `--- ${labelA}`, h('br'), `+++ ${labelB}`), diffPre(a, b));
}

/**
 * A conflict's three versions side by side: what the editor started from (`base`), the draft
 * (`mine`) and what is published now (`theirs`), as the three diffs between them.
 */
export function threeWayView({ base, mine, theirs, theirsLabel }) {
  return h('div', { class: 'three-way', id: 'three-way' },
    h('div', { class: 'diff', id: 'diff-mine' }, h('h3', {}, 'Your changes'), h('p', { class: 'muted small' }, 'what you started from → your draft'), diffPre(base, mine)),
    h('div', { class: 'diff', id: 'diff-theirs' }, h('h3', {}, 'Published meanwhile'), h('p', { class: 'muted small' }, `what you started from → ${theirsLabel}`), diffPre(base, theirs)),
    h('div', { class: 'diff', id: 'diff-result' }, h('h3', {}, 'If you publish your draft'), h('p', { class: 'muted small' }, `${theirsLabel} → your draft`), diffPre(theirs, mine)));
}
