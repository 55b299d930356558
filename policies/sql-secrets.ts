/**
 * Password literals out of SQL text before it rests anywhere (recording, audit log, holds, API):
 * `CREATE/ALTER ROLE|USER … [ENCRYPTED] PASSWORD '…'`, including the SCRAM or MD5 verifier that
 * psql's `\password` sends, in any quoting (`'…'`, `E'…'`, `U&'…'`, `$tag$…$tag$`), with comments
 * between keyword and literal. The literal becomes `'[redacted]'`, so an auditor sees that
 * something was removed. The server still gets the statement as the client sent it.
 *
 * Cost: one case-insensitive substring test for text without "password" (nearly all of it).
 * Known gap: a password built at run time (`EXECUTE format('… PASSWORD %L', x)` inside DO) is
 * redacted only where it appears as `PASSWORD '…'` in the text.
 */
const HINT = /password/i;
const GAP = String.raw`(?:\s|/\*[\s\S]*?\*/|--[^\n]*(?:\n|$))*`;
const LITERAL = String.raw`(?:[Ee]'(?:[^'\\]|\\[\s\S]|'')*'|(?:[Uu]&)?'(?:[^']|'')*'|\$([A-Za-z_][A-Za-z_0-9]*)?\$[\s\S]*?\$\1\$)`;
const PASSWORD_LITERAL = new RegExp(String.raw`(\bPASSWORD${GAP})${LITERAL.replace('\\1', '\\2')}`, 'gi');

export const REDACTED_LITERAL = "'[redacted]'";

/** The text with every password literal replaced by `'[redacted]'` (the same string when there is none). */
export function redactSqlSecrets(sql: string): string {
  if (!HINT.test(sql)) return sql;
  return sql.replace(PASSWORD_LITERAL, (_m, kw: string) => `${kw}${REDACTED_LITERAL}`);
}
