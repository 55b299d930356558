/**
 * Which statements may change a setting the proxy pins (standard_conforming_strings,
 * client_encoding; parse-pins.ts) while they run. The server reports such a change in a
 * ParameterStatus just before the ReadyForQuery that ends the statement's batch, so a statement
 * the client pipelined behind it would already be at the server, read with the new setting,
 * before the proxy could see the change. The session therefore holds everything the client sends
 * after such a statement until its answer (and any ParameterStatus) has arrived; inside one
 * extended-protocol batch (no Sync between) a later Parse or Query cannot wait without
 * reordering the batch, so it is refused (0A000, the server skips to the Sync) when another
 * setting could read its text differently (`readsDifferently`: a backslash, which only
 * standard_conforming_strings changes, or a byte outside ASCII, which only client_encoding
 * changes); pure-ASCII text without a backslash reads the same either way and goes on, so
 * libpq pipelines of ordinary statements keep working.
 *
 * The test is on the text, conservative and cheap: a statement is safe only when it starts with
 * a keyword that runs no user code by itself (SELECT, TABLE, SHOW, VALUES, transaction control,
 * FETCH/CLOSE/RELEASE/SAVEPOINT, EXPLAIN without ANALYZE is not special-cased) and has no `(`
 * (no function call, no subquery), no `;` before its end (one statement) and no `$$` body.
 * Everything else (SET, RESET, DO, CALL, EXECUTE, any function call, DML, which may fire
 * triggers, DDL) is a barrier. pgbench's SELECT/UPDATE/INSERT in -M extended are not pipelined
 * (one Sync each, waiting for the answer), so nothing there waits longer than before.
 * Not seen: a view or a rule over a plain `SELECT … FROM v` that calls set_config().
 */
const SAFE_START = /^(?:select|table|show|begin|start|commit|end|rollback|abort|savepoint|release|fetch|close|move|listen|unlisten|notify)\b/i;
const LEADING = /^(?:\s|--[^\n]*\n?|\/\*[\s\S]*?\*\/)*/;

/** True when running `sql` might change a session setting (see above). */
export function mayChangeSettings(sql: string): boolean {
  const text = sql.replace(LEADING, '');
  if (!SAFE_START.test(text)) return true;
  if (text.includes('(') || text.includes('$$')) return true;
  const semi = text.indexOf(';');
  return semi >= 0 && text.slice(semi + 1).trim() !== '';
}

/** True when standard_conforming_strings or client_encoding could change how the server reads `sql`. */
export function readsDifferently(sql: string): boolean {
  return /[\\\u0080-\uffff]/.test(sql);
}
