/**
 * Quoting and expansion helpers for the shell splitter: pure functions over text, no parser
 * state. ANSI-C `$'…'` decoding, matching of `$(( ))`/`${ }` closers, word splitting and
 * `{a,b}` brace expansion.
 */

import type { Arg, Word } from './shell-words.types.js';

const MAX_BRACE = 64;

/**
 * Decodes the body of `$'…'` starting at `pos` (just past the opening quote).
 * Returns the decoded text and the position after the closing quote (or the end of text).
 */
export function decodeAnsiC(s: string, pos: number): { value: string; end: number } {
  let out = '';
  while (pos < s.length) {
    const c = s[pos]!;
    if (c === "'") { pos++; return { value: out, end: pos }; }
    if (c !== '\\') { out += c; pos++; continue; }
    const n = s[pos + 1] ?? '';
    pos += 2;
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', e: '\x1b', E: '\x1b', '\\': '\\', "'": "'", '"': '"', '?': '?' };
    if (n in simple) { out += simple[n]; continue; }
    if (n === 'x' || n === 'u' || n === 'U') {
      const max = n === 'x' ? 2 : n === 'u' ? 4 : 8;
      const m = new RegExp(`^[0-9a-fA-F]{1,${max}}`).exec(s.slice(pos, pos + max));
      if (!m) { out += '\\' + n; continue; }
      pos += m[0].length;
      const cp = parseInt(m[0], 16);
      out += cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
      continue;
    }
    if (n >= '0' && n <= '7') {
      const m = /^[0-7]{1,3}/.exec(s.slice(pos - 1, pos + 2))!;
      pos += m[0].length - 1;
      out += String.fromCharCode(parseInt(m[0], 8) & 0xff);
      continue;
    }
    if (n === 'c' && pos < s.length) { out += String.fromCharCode(s.charCodeAt(pos) & 0x1f); pos++; continue; }
    out += '\\' + n;
  }
  return { value: out, end: pos };
}

/** Position of the closer matching an opener already consumed (or the end of text). */
export function matchClose(s: string, from: number, open: string, close: string): number {
  let depth = 1;
  let p = from;
  while (p < s.length) {
    if (s[p] === '\\') { p += 2; continue; }
    if (s[p] === "'" && open !== '((' ) {
      const e = s.indexOf("'", p + 1);
      p = e < 0 ? s.length : e + 1;
      continue;
    }
    if (s.startsWith(close, p)) {
      depth--;
      if (depth === 0) return p;
      p += close.length;
      continue;
    }
    if (s.startsWith(open, p)) { depth++; p += open.length; continue; }
    p++;
  }
  return s.length;
}

/** Word splitting of known-variable expansions and `{a,b}` brace expansion of unquoted words. */
export function expandWords(words: Word[]): Arg[] {
  const out: Arg[] = [];
  for (const w of words) {
    if (w.split) {
      for (const part of w.value.split(/[ \t\n]+/).filter(Boolean)) out.push({ value: part, dynamic: w.dynamic, quoted: w.quoted });
      continue;
    }
    if (!w.quoted && /\{[^{}]*,[^{}]*\}/.test(w.value)) {
      for (const v of braceExpand(w.value)) out.push({ value: v, dynamic: w.dynamic, quoted: false });
      continue;
    }
    out.push({ value: w.value, dynamic: w.dynamic, quoted: w.quoted });
  }
  return out;
}

function braceExpand(word: string): string[] {
  let results = [word];
  for (let round = 0; round < 4; round++) {
    const next: string[] = [];
    let changed = false;
    for (const r of results) {
      const m = /\{([^{}]*,[^{}]*)\}/.exec(r);
      if (!m) { next.push(r); continue; }
      changed = true;
      for (const alt of m[1]!.split(',')) next.push(r.slice(0, m.index) + alt + r.slice(m.index + m[0].length));
    }
    results = next.slice(0, MAX_BRACE);
    if (!changed) break;
  }
  return results;
}
