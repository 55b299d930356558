import type { HttpDeps } from './http.types.js';
import { HttpError } from './http-errors.js';
import { requireAudit } from './route-capability.js';
import type { Route, RequestContext } from './router.js';
import { searchRequest } from '../../recorder/index/search-request.js';
import { QueryError } from '../../recorder/index/query-text.js';
import { IndexUnavailable, type RecordingSearch } from '../../recorder/index/index.types.js';
import { auditBy } from '../../recorder/audit-events.js';

/** Index errors as the client sees them: bad input is a 400, an index still opening a 503; never a 500 for query text. */
export function indexCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw indexError(err);
  }
}

export function indexError(err: unknown): unknown {
  if (err instanceof QueryError) return new HttpError(400, err.message);
  if (err instanceof IndexUnavailable) return new HttpError(503, err.message);
  // FTS5 refusing an expression would be a bug in parseQuery; the client still gets a 400.
  if ((err as Error)?.name === 'SqliteError' && /fts5|MATCH/i.test((err as Error).message)) return new HttpError(400, 'the query cannot be searched');
  return err;
}

export function requireIndex(cp: HttpDeps): RecordingSearch {
  if (!cp.index) throw new HttpError(503, 'the search index is not running on this server');
  return cp.index;
}

/**
 * `GET /api/v1/search`: output, typed commands, exec requests, SQL and markers of every
 * recording, from the index (recorder/index/), newest first, one page per call
 * (`next_cursor`). Parameters in recorder/index/search-request.ts. Audited.
 */
export function searchRoutes(cp: HttpDeps): Route[] {
  const handler = async ({ identity, url }: RequestContext) => {
    requireAudit(cp, identity);
    const index = requireIndex(cp);
    const { query, text } = indexCall(() => searchRequest(url.searchParams));
    let page;
    try {
      page = await index.search(query);
    } catch (err) {
      throw indexError(err);
    }
    await cp.audit.append(auditBy(identity, 'recording.search', {
      query: text, filters: Object.fromEntries([...url.searchParams].filter(([k]) => k !== 'q' && k !== 'cursor')), hits: page.hits.length,
    }));
    return { query: text, hits: page.hits, next_cursor: page.next ?? null, index: index.status() };
  };
  return [
    { method: 'GET', path: '/api/v1/search', handler },
    // The browser app's path (cookie session); same handler.
    { method: 'GET', path: '/api/v1/ui/search', handler },
  ];
}
