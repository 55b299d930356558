import type { SessionQuery } from './index.types.js';
import { QueryError } from './query-text.js';

const MAX_LIMIT = 500;

/**
 * The sessions page's parameters → a SessionQuery (pure; QueryError → 400): `user`, `target`
 * (substrings), `protocol`, `status` (live|ended), `from`, `to` (ISO), `denials=1`, `cursor`,
 * `limit` (1 to 500, default 100).
 */
export function sessionsRequest(p: URLSearchParams): SessionQuery {
  const get = (k: string) => {
    const v = p.get(k)?.trim();
    if (v && v.length > 200) throw new QueryError(`"${k}" is longer than 200 characters`);
    return v || undefined;
  };
  const q: SessionQuery = { limit: 100 };
  const user = get('user');
  if (user) q.user = user;
  const target = get('target');
  if (target) q.target = target;
  const protocol = get('protocol');
  if (protocol) {
    if (protocol !== 'ssh' && protocol !== 'postgres') throw new QueryError('"protocol" must be ssh or postgres');
    q.protocol = protocol;
  }
  const status = get('status');
  if (status) {
    if (status !== 'live' && status !== 'ended') throw new QueryError('"status" must be live or ended');
    q.status = status;
  }
  for (const k of ['from', 'to'] as const) {
    const v = get(k);
    if (!v) continue;
    const ms = Date.parse(v);
    if (!Number.isFinite(ms)) throw new QueryError(`"${k}" is not a date`);
    if (k === 'from') q.fromMs = ms;
    else q.toMs = ms;
  }
  if (get('denials') === '1') q.onlyDenials = true;
  const cursor = get('cursor');
  if (cursor) {
    if (!/^\d{1,16}\.[0-9a-z-]{1,40}$/.test(cursor)) throw new QueryError('"cursor" is not one this server returned');
    q.cursor = cursor;
  }
  const limit = get('limit');
  if (limit) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new QueryError(`"limit" must be 1 to ${MAX_LIMIT}`);
    q.limit = n;
  }
  return q;
}
