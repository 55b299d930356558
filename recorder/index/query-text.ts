/**
 * User query text → an FTS5 MATCH expression. Pure.
 *
 * The user's text never reaches FTS5 as syntax: it is cut into words (letters, digits and
 * combining marks, as FTS5's unicode61 tokenizer cuts them) and every word or "quoted phrase"
 * becomes a double-quoted FTS5 string holding only those words, so quotes, `AND`/`OR`/`NOT`/
 * `NEAR`, column filters, `^` and parentheses are plain text. Segments are ANDed; a word ending
 * in `*` is a prefix. See https://www.sqlite.org/fts5.html#full_text_query_syntax
 */

export class QueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueryError';
  }
}

export const MAX_QUERY_CHARS = 1000;
const MAX_SEGMENTS = 16;
const WORD = /[\p{L}\p{N}\p{M}]+/gu;

export interface ParsedQuery {
  /** The FTS5 expression. */
  match: string;
  /** The words, for display. */
  words: string[];
}

export function parseQuery(text: string): ParsedQuery {
  if (text.length > MAX_QUERY_CHARS) throw new QueryError(`the query is longer than ${MAX_QUERY_CHARS} characters`);
  // Lone surrogates (text that was not valid UTF-16) become U+FFFD, which is no word.
  const clean = text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  const segments: { words: string[]; prefix: boolean }[] = [];
  for (const m of clean.matchAll(/"([^"]*)"?|(\S+)/g)) {
    const raw = m[1] ?? m[2] ?? '';
    const words = raw.match(WORD) ?? [];
    if (!words.length) continue;
    const prefix = m[2] !== undefined && raw.endsWith('*');
    segments.push({ words, prefix });
  }
  if (!segments.length) throw new QueryError('the query has no words to search for (letters or digits)');
  if (segments.length > MAX_SEGMENTS) throw new QueryError(`the query has more than ${MAX_SEGMENTS} words or phrases`);
  const match = segments.map((s) => `"${s.words.join(' ')}"${s.prefix ? '*' : ''}`).join(' AND ');
  return { match, words: segments.flatMap((s) => s.words) };
}

/** `7d`, `12h`, `30m`, `90s`, `2w` or an ISO date → ms since the epoch. */
export function parseSince(text: string, now = Date.now()): number {
  const m = /^(\d{1,6})([smhdw])$/.exec(text.trim());
  if (m) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return now - Number(m[1]) * unit;
  }
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(ms)) throw new QueryError(`"${text.slice(0, 40)}" is not a duration (7d, 12h, 30m) or an ISO date`);
  return ms;
}

/** A user or target filter: exact (case-insensitive) unless it holds `*` or `?`. */
export function isGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

/** Glob → SQL LIKE pattern (escape `\`): `prod-*` → `prod-%`. LIKE is case-insensitive for ASCII. */
export function globToLike(pattern: string): string {
  return pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%').replace(/\?/g, '_');
}
