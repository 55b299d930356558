// Search matches highlighted: in result snippets and marker labels as <mark> text nodes, on the
// replayed terminal with the CSS Custom Highlight API (ranges over the player's own text nodes,
// so the player's DOM is never changed). The words are read as the index reads them
// (recorder/index/query-text.ts): letters, digits and marks; "a phrase"; `prefix*`.

import { h } from './dom.js';

const WORD = /[\p{L}\p{N}\p{M}]+/gu;
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The query text → one case-insensitive RegExp matching any of its words or phrases; undefined for none. */
export function matcher(q) {
  const parts = [];
  for (const m of String(q ?? '').matchAll(/"([^"]*)"?|(\S+)/g)) {
    const raw = m[1] ?? m[2] ?? '';
    const words = raw.match(WORD) ?? [];
    if (!words.length) continue;
    const prefix = m[2] !== undefined && raw.endsWith('*');
    parts.push(words.map(escape).join('[^\\p{L}\\p{N}\\p{M}]+') + (prefix ? '[\\p{L}\\p{N}\\p{M}]*' : ''));
  }
  if (!parts.length) return undefined;
  // Longest first, so a phrase wins over one of its words.
  parts.sort((a, b) => b.length - a.length);
  return new RegExp(parts.join('|'), 'giu');
}

/** `text` as nodes with each match in a <mark> (text only: recorded content is hostile). */
export function marked(text, re) {
  const s = String(text ?? '');
  if (!re) return [s];
  const out = [];
  let at = 0;
  for (const m of s.matchAll(re)) {
    if (!m[0]) continue;
    if (m.index > at) out.push(s.slice(at, m.index));
    out.push(h('mark', {}, m[0]));
    at = m.index + m[0].length;
  }
  if (at < s.length) out.push(s.slice(at));
  return out;
}

export const supported = () => typeof CSS !== 'undefined' && 'highlights' in CSS && typeof Highlight === 'function';

/**
 * Highlights the matches of `re` on each `.ap-line` under `root` as the named highlight
 * (`::highlight(NAME)` in style.css). A match may span the player's coloured spans. Returns the
 * number of ranges.
 */
export function highlightLines(root, re, name = 'search-hit') {
  if (!supported()) return 0;
  const ranges = [];
  if (re) {
    for (const line of root.querySelectorAll('.ap-line')) {
      const nodes = [];
      let text = '';
      const walk = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
      for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        nodes.push({ node: n, from: text.length });
        text += n.data.replace(/\u00a0/g, ' ');
      }
      if (!text.trim()) continue;
      const at = (i) => {
        let k = nodes.length - 1;
        while (k > 0 && nodes[k].from > i) k--;
        return [nodes[k].node, i - nodes[k].from];
      };
      for (const m of text.matchAll(re)) {
        if (!m[0]) continue;
        const r = new Range();
        r.setStart(...at(m.index));
        const [endNode, endOff] = at(m.index + m[0].length - 1);
        r.setEnd(endNode, endOff + 1);
        ranges.push(r);
      }
    }
  }
  if (ranges.length) CSS.highlights.set(name, new Highlight(...ranges));
  else CSS.highlights.delete(name);
  return ranges.length;
}
