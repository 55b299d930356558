import type { CommandVerdict, DocKind, SearchQuery } from './index.types.js';
import { DOC_KINDS } from './index.types.js';
import { parseQuery, parseSince, QueryError } from './query-text.js';

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;
const VERDICTS: readonly CommandVerdict[] = ['allow', 'alert', 'review', 'deny'];
const ID = /^[0-9a-z]{8,16}-[0-9a-f]{8}$/;

/**
 * `GET /api/v1/search` parameters → a SearchQuery. Pure; throws QueryError (→ 400) on any bad
 * value. Without `q` it lists command events (shell lines, exec requests, SQL statements) by the
 * filters: "everything dana did on prod-* last week" is `user=dana&target=prod-*&since=7d`.
 *
 * - `q`: words and "phrases" (all must match), `word*` for a prefix
 * - `user`, `target`: exact (case-insensitive) or a glob with `*` and `?`
 * - `protocol`: `ssh` or `postgres`
 * - `since`, `until`: a duration back from now (`7d`, `12h`) or an ISO date
 * - `kind`: `output`, `command`, `sql`, `marker`, comma-separated
 * - `verdict`: `allow`, `alert`, `review`, `deny` (command events only)
 * - `recording`: one session; `cursor`: from the previous page; `limit`: 1 to 200 (50)
 */
export function searchRequest(p: URLSearchParams, now = Date.now()): { query: SearchQuery; text: string } {
  const one = (k: string): string | undefined => {
    const all = p.getAll(k);
    if (all.length > 1) throw new QueryError(`"${k}" is given more than once`);
    const v = all[0]?.trim();
    if (v !== undefined && v.length > 1000) throw new QueryError(`"${k}" is longer than 1000 characters`);
    return v === '' ? undefined : v;
  };
  const text = one('q') ?? '';
  const q: SearchQuery = { limit: DEFAULT_LIMIT };
  if (text) q.match = parseQuery(text).match;
  const user = one('user');
  if (user) q.user = name('user', user);
  const target = one('target');
  if (target) q.target = name('target', target);
  const protocol = one('protocol');
  if (protocol) {
    if (protocol !== 'ssh' && protocol !== 'postgres') throw new QueryError('"protocol" must be ssh or postgres');
    q.protocol = protocol;
  }
  const since = one('since');
  if (since) q.sinceMs = parseSince(since, now);
  const until = one('until');
  if (until) q.untilMs = parseSince(until, now);
  const kind = one('kind');
  if (kind) {
    const kinds = kind.split(',').map((k) => k.trim()).filter(Boolean);
    for (const k of kinds) if (!DOC_KINDS.includes(k as DocKind)) throw new QueryError(`"kind" must be ${DOC_KINDS.join(', ')} (comma-separated)`);
    q.kinds = [...new Set(kinds)] as DocKind[];
  }
  const verdict = one('verdict');
  if (verdict) {
    if (!VERDICTS.includes(verdict as CommandVerdict)) throw new QueryError(`"verdict" must be ${VERDICTS.join(', ')}`);
    q.verdict = verdict as CommandVerdict;
  }
  const recording = one('recording');
  if (recording) {
    if (!ID.test(recording)) throw new QueryError('"recording" is not a recording id');
    q.recording = recording;
  }
  const cursor = one('cursor');
  if (cursor) {
    if (!/^\d{1,18}$/.test(cursor)) throw new QueryError('"cursor" is not one this server returned');
    q.cursor = cursor;
  }
  const limit = one('limit');
  if (limit) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new QueryError(`"limit" must be 1 to ${MAX_LIMIT}`);
    q.limit = n;
  }
  if (!q.match) {
    // No words: list command events. Output and markers are only found by their words.
    const kinds = (q.kinds ?? ['command', 'sql']).filter((k) => k === 'command' || k === 'sql');
    if (!kinds.length) throw new QueryError('"q" is needed to search output or markers');
    q.kinds = kinds;
  } else if (q.verdict) {
    q.kinds = (q.kinds ?? ['command', 'sql']).filter((k) => k === 'command' || k === 'sql');
    if (!q.kinds.length) throw new QueryError('"verdict" applies to command and sql events only');
  }
  return { query: q, text };
}

function name(key: string, v: string): string {
  if (v.length > 200) throw new QueryError(`"${key}" is longer than 200 characters`);
  return v;
}
