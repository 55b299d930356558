import type { SearchQuery, SessionQuery } from './index.types.js';
import { globToLike, isGlob, QueryError } from './query-text.js';

const SPREAD = 1024; // ROWID_SPREAD in sqlite-index.ts (imported there from here would be a cycle)

/**
 * SQL for the embedded index. User text only ever reaches SQLite as a bound parameter; the MATCH
 * operand is built by parseQuery, which leaves no FTS5 syntax of the user's in it.
 */

function cursorRowid(cursor: string | undefined): number | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  if (!/^\d{1,18}$/.test(cursor)) throw new QueryError('"cursor" is not one this server returned');
  return Number(cursor);
}

function nameFilter(col: string, value: string, key: string, where: string[], params: Record<string, unknown>): void {
  if (isGlob(value)) {
    where.push(`${col} LIKE @${key} ESCAPE '\\'`);
    params[key] = globToLike(value);
  } else {
    where.push(`${col} = @${key} COLLATE NOCASE`);
    params[key] = value;
  }
}

export function searchSql(q: SearchQuery): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = { limit: q.limit + 1 };
  const where: string[] = [];
  const before = cursorRowid(q.cursor);
  const rowid = q.match ? 'f.rowid' : 'd.rowid';
  if (q.match) {
    where.push('docs_fts MATCH @match');
    params.match = q.match;
  }
  if (before !== undefined) {
    where.push(`${rowid} < @before`);
    params.before = before;
  }
  if (q.sinceMs !== undefined) {
    where.push(`${rowid} >= @after`);
    params.after = Math.max(0, Math.floor(q.sinceMs)) * SPREAD;
  }
  if (q.untilMs !== undefined) {
    where.push(`${rowid} < @until`);
    params.until = Math.max(0, Math.floor(q.untilMs)) * SPREAD;
  }
  if (q.user) nameFilter('s.user', q.user, 'user', where, params);
  if (q.target) nameFilter('s.target', q.target, 'target', where, params);
  if (q.protocol) {
    where.push('s.protocol = @protocol');
    params.protocol = q.protocol;
  }
  if (q.recording) {
    where.push('d.recording = @recording');
    params.recording = q.recording;
  }
  if (q.kinds?.length) {
    where.push(`d.kind IN (${q.kinds.map((_k, i) => `@kind${i}`).join(', ')})`);
    q.kinds.forEach((k, i) => (params[`kind${i}`] = k));
  }
  if (q.verdict) {
    where.push('d.verdict = @verdict');
    params.verdict = q.verdict;
  }
  const cols = `d.rowid AS rowid, d.recording, d.kind, d.t, s.protocol, s.user, s.target, s.meta,
    d.via, d.text AS ctext, d.name, d.verdict, d.rule, d.outcome`;
  const sql = q.match
    ? `SELECT ${cols}, snippet(docs_fts, 0, '', '', '…', 24) AS snippet
       FROM docs_fts f JOIN docs d ON d.rowid = f.rowid JOIN sessions s ON s.id = d.recording
       WHERE ${where.join(' AND ')} ORDER BY f.rowid DESC LIMIT @limit`
    // Command events only (docs_commands and docs_verdict are their partial indexes, in rowid order).
    : `SELECT ${cols}, substr(d.text, 1, 300) AS snippet
       FROM docs d JOIN sessions s ON s.id = d.recording
       WHERE ${['d.via IS NOT NULL', ...where].join(' AND ')} ORDER BY d.rowid DESC LIMIT @limit`;
  return { sql, params };
}

export function sessionsSql(q: SessionQuery): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = { limit: q.limit + 1 };
  const where: string[] = [];
  if (q.cursor) {
    const m = /^(\d{1,16})\.([0-9a-z-]{1,40})$/.exec(q.cursor);
    if (!m) throw new QueryError('"cursor" is not one this server returned');
    where.push('(start_ms, id) < (@cms, @cid)');
    params.cms = Number(m[1]);
    params.cid = m[2];
  }
  if (q.user) {
    where.push('instr(lower(user), lower(@user)) > 0');
    params.user = q.user;
  }
  if (q.target) {
    where.push('instr(lower(target), lower(@target)) > 0');
    params.target = q.target;
  }
  if (q.protocol) {
    where.push('protocol = @protocol');
    params.protocol = q.protocol;
  }
  if (q.status === 'live') where.push(`status = 'live'`);
  if (q.status === 'ended') where.push(`status <> 'live'`);
  if (q.fromMs !== undefined) {
    where.push('start_ms >= @from');
    params.from = q.fromMs;
  }
  if (q.toMs !== undefined) {
    where.push('start_ms <= @to');
    params.to = q.toMs;
  }
  if (q.onlyDenials) where.push('denials > 0');
  // The first exec request of an SSH session (its command column), from the docs_exec partial index.
  const exec = `(SELECT d.text FROM docs d WHERE d.recording = sessions.id AND d.via = 'exec' ORDER BY d.key LIMIT 1) AS exec`;
  const sql = `SELECT id, start_ms, meta, denials, commands, ${exec} FROM sessions ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY start_ms DESC, id DESC LIMIT @limit`;
  return { sql, params };
}
