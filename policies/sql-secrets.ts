/**
 * Password literals out of SQL text before it rests anywhere (recording, audit log, holds, API):
 * `CREATE/ALTER ROLE|USER … [ENCRYPTED] PASSWORD '…'`, including the SCRAM or MD5 verifier that
 * psql's `\password` sends, in any quoting (`'…'`, `E'…'`, `U&'…'`, `$tag$…$tag$`), with comments
 * between keyword and literal. The literal becomes `'[redacted]'`, so an auditor sees that
 * something was removed. The server still gets the statement as the client sent it.
 *
 * Dynamic SQL: when the word PASSWORD appears anywhere else (inside a string, a `DO` body, a
 * function body: `EXECUTE format('ALTER ROLE app PASSWORD %L', 'secret')`, a password held in a
 * variable declared before it, `'… PASSWORD ' || quote_literal(x)`, psql's `\gexec` input), the
 * whole text is redacted conservatively: every string literal and comment, at every level
 * (`DO`/`AS` bodies are read as code and their own literals redacted; any other dollar-quoted
 * string is a literal), becomes `'[redacted]'` / an empty comment. Bind parameters of such a
 * statement are redacted too (`mentionsPassword`, statement-tracker.ts).
 *
 * Cost: one case-insensitive substring test for text without "password" (nearly all of it).
 * Not found: a password that reaches the server without the word PASSWORD in the same text
 * (set earlier with `set_config`, read from a table, `\set` variables expanded by psql are
 * in the text and so are found).
 */
const HINT = /password/i;
const WORD = /\bpassword\b/i;
const GAP = String.raw`(?:\s|/\*[\s\S]*?\*/|--[^\n]*(?:\n|$))*`;
const LITERAL = String.raw`(?:[Ee]'(?:[^'\\]|\\[\s\S]|'')*'|(?:[Uu]&)?'(?:[^']|'')*'|\$([A-Za-z_][A-Za-z_0-9]*)?\$[\s\S]*?\$\1\$)`;
const PASSWORD_LITERAL = new RegExp(String.raw`(\bPASSWORD${GAP})${LITERAL.replace('\\1', '\\2')}`, 'gi');

export const REDACTED_LITERAL = "'[redacted]'";
const REDACTED_PLAIN = new RegExp(String.raw`\bPASSWORD${GAP}'\[redacted\]'`, 'gi');

/** True when the text names PASSWORD as a word: its Bind parameters may carry one. */
export function mentionsPassword(sql: string): boolean {
  return HINT.test(sql) && WORD.test(sql);
}

/** The text with every password literal replaced by `'[redacted]'` (the same string when there is none). */
export function redactSqlSecrets(sql: string): string {
  if (!HINT.test(sql)) return sql;
  const plain = sql.replace(PASSWORD_LITERAL, (_m, kw: string) => `${kw}${REDACTED_LITERAL}`);
  // Every PASSWORD is a keyword of the statement itself, followed by its literal: the plain
  // form, nothing else to hide. One inside a string, a body or a comment is dynamic SQL.
  const all = sql.match(/\bpassword\b/gi)?.length ?? 0;
  if (codePasswords(sql) === all && !WORD.test(plain.replace(REDACTED_PLAIN, ''))) return plain;
  return redactAllLiterals(sql, 0);
}

/** How many times PASSWORD is a word of the code itself (not inside a literal, body, identifier or comment). */
function codePasswords(text: string): number {
  let count = 0;
  walk(text, {
    word: (w) => { if (/^password$/i.test(w)) count++; },
  });
  return count;
}

const MAX_DEPTH = 8;

interface Visitor {
  word(w: string): void;
  /** A dollar-quoted string: `code` when it follows `DO`, `AS` or `LANGUAGE x`. Returns its replacement. */
  dollar?(tag: string, body: string, code: boolean): string;
}

/**
 * Every string literal and comment in `text` redacted; dollar-quoted bodies after `DO`, `AS` or
 * `LANGUAGE x` are read as code (their literals redacted in turn), any other one is a literal.
 */
function redactAllLiterals(text: string, depth: number): string {
  return walk(text, {
    word: () => {},
    dollar: (tag, body, code) => (code && depth < MAX_DEPTH ? `${tag}${redactAllLiterals(body, depth + 1)}${tag}` : REDACTED_LITERAL),
  });
}

/**
 * One pass over SQL text as the server's lexer reads it (standard_conforming_strings on): words,
 * "identifiers", 'literals' (E'' with backslash escapes), $tag$ strings, comments. Returns the
 * text with every literal replaced by `'[redacted]'`, every comment emptied, and each dollar
 * string by the visitor's answer.
 */
function walk(text: string, v: Visitor): string {
  let out = '';
  let i = 0;
  let lastWords: string[] = [];
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i);
      out += '--';
      i = end < 0 ? n : end;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      let d = 1;
      let j = i + 2;
      while (j < n && d > 0) {
        if (text[j] === '/' && text[j + 1] === '*') { d++; j += 2; } else if (text[j] === '*' && text[j + 1] === '/') { d--; j += 2; } else j++;
      }
      out += '/**/';
      i = j;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < n) {
        if (text[j] === '"') {
          if (text[j + 1] === '"') { j += 2; continue; }
          break;
        }
        j++;
      }
      out += text.slice(i, j + 1);
      i = j + 1;
      lastWords = [];
      continue;
    }
    if (c === "'") {
      const escapes = /(^|[^A-Za-z0-9_$])[Ee]$/.test(out);
      let j = i + 1;
      while (j < n) {
        if (escapes && text[j] === '\\') { j += 2; continue; }
        if (text[j] === "'") {
          if (text[j + 1] === "'") { j += 2; continue; }
          break;
        }
        j++;
      }
      out += REDACTED_LITERAL;
      i = j + 1;
      lastWords = [];
      continue;
    }
    if (c === '$' && !/[A-Za-z0-9_$]$/.test(out)) {
      const tag = /^\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$/.exec(text.slice(i, i + 64));
      if (tag) {
        const close = text.indexOf(tag[0], i + tag[0].length);
        const body = text.slice(i + tag[0].length, close < 0 ? n : close);
        const code = /^(do|as)$/i.test(lastWords.at(-1) ?? '') || /^language$/i.test(lastWords.at(-2) ?? '');
        out += v.dollar ? v.dollar(tag[0], body, code) : REDACTED_LITERAL;
        i = close < 0 ? n : close + tag[0].length;
        lastWords = [];
        continue;
      }
    }
    const word = /^[A-Za-z_][A-Za-z_0-9$]*/.exec(text.slice(i, i + 128));
    if (word) {
      v.word(word[0]);
      lastWords = [...lastWords.slice(-2), word[0]];
      out += word[0];
      i += word[0].length;
      continue;
    }
    if (!/\s/.test(c)) lastWords = [];
    out += c;
    i++;
  }
  return out;
}
