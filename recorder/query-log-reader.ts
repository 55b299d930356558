import { NO_CACHE, type ReaderCacheLike } from './reader-cache.js';
import { lineBatches } from './recording-lines.js';

/** One line of a Postgres recording (see query-log-writer.ts for the fields of each type). */
export type QueryLogEvent = Record<string, any>;

/**
 * The lines of a Postgres recording in order, parsed, each with its 1-based line number (the
 * number the UI asks parameters by). Lines that are not JSON (a torn last line) are skipped
 * without taking a number.
 */
export async function* queryLogEvents(path: string): AsyncGenerator<{ n: number; event: QueryLogEvent }> {
  let n = 0;
  for await (const batch of lineBatches(path)) {
    for (const { text } of batch) {
      if (!text) continue;
      let event: QueryLogEvent;
      try {
        event = JSON.parse(text) as QueryLogEvent;
      } catch {
        continue;
      }
      if (event === null || typeof event !== 'object') continue;
      yield { n: ++n, event };
    }
  }
}

export interface StatementRow {
  n: number;
  t: string;
  offset: number;
  type: string;
  protocol?: string;
  sql: string | null;
  duration_ms?: number;
  rows?: number;
  tag?: string;
  sqlstate?: string;
  error?: string;
  verdict?: { action: string; rule?: string; message?: string };
  params: number;
  copy?: unknown;
  /** `notice` and `error` rows: what the proxy itself told the client (NOTICE, FATAL), in `message`. */
  severity?: string;
  message?: string;
}

export interface StatementRows {
  start: string | undefined;
  rows: StatementRow[];
  denials: number;
}

/** Statement lines of a Postgres recording, parameters left out (they come on demand), kept in `cache` until the file changes. */
export function statementRows(path: string, cache: ReaderCacheLike = NO_CACHE): Promise<StatementRows> {
  return cache.get(`jsonl:${path}`, path, async () => {
    const rows: StatementRow[] = [];
    let start: number | undefined;
    let startIso: string | undefined;
    let denials = 0;
    for await (const { n, event: e } of queryLogEvents(path)) {
      const ms = Date.parse(String(e.t));
      if (start === undefined && Number.isFinite(ms)) { start = ms; startIso = String(e.t); }
      if ((e.type === 'notice' || e.type === 'error') && e.from === 'proxy') {
        rows.push({
          n, t: String(e.t), offset: start !== undefined && Number.isFinite(ms) ? (ms - start) / 1000 : 0, type: String(e.type), sql: null, params: 0,
          severity: String(e.severity ?? ''), message: String(e.message ?? '').slice(0, 20_000), ...(typeof e.sqlstate === 'string' ? { sqlstate: e.sqlstate } : {}),
        });
        continue;
      }
      if (e.type !== 'statement' && e.type !== 'alert') continue;
      if (e.verdict?.action === 'deny') denials++;
      rows.push({
        n, t: String(e.t), offset: start !== undefined && Number.isFinite(ms) ? (ms - start) / 1000 : 0, type: String(e.type), protocol: e.protocol,
        sql: typeof e.sql === 'string' ? e.sql.slice(0, 20_000) : null, duration_ms: e.duration_ms, rows: e.rows, tag: e.tag ?? (Array.isArray(e.tags) ? e.tags.join(', ') : undefined),
        sqlstate: e.error?.sqlstate, error: e.error?.message, verdict: e.verdict, params: Array.isArray(e.params) ? e.params.length : 0, copy: e.copy,
      });
    }
    return { start: startIso, rows, denials };
  });
}

/** The parameters of line `n` (1-based, as in StatementRow.n) of a Postgres recording. */
export async function statementParams(path: string, n: number): Promise<unknown[]> {
  for await (const { n: at, event } of queryLogEvents(path)) {
    if (at === n) return Array.isArray(event.params) ? event.params : [];
  }
  return [];
}
