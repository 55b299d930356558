import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stat } from 'node:fs/promises';
import type { HttpDeps } from './http.types.js';
import { RecordingCatalog } from '../../recorder/catalog.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { HttpError } from './http-errors.js';
import { requireAudit } from './route-capability.js';
import type { Route } from './router.js';
import { castIndex, castWindow } from '../../recorder/cast-reader.js';
import { rawAsCast, rawCastIndex, rawCastWindow, rawSummary } from '../../recorder/raw-reader.js';
import { statementParams, statementRows } from '../../recorder/query-log-reader.js';
import { ReaderCache } from '../../recorder/reader-cache.js';
import { sessionsRequest } from '../../recorder/index/sessions-request.js';
import { indexCall, indexError, requireIndex } from './api-search.js';
import { auditBy, type Actor } from '../../recorder/audit-events.js';

/** Routes the browser app needs beyond the public API: session list with filters, search, replay data. */
export function uiRecordingRoutes(cp: HttpDeps): Route[] {
  const meta = async (id: string): Promise<RecordingMeta> => {
    if (!RecordingCatalog.isId(id)) throw new HttpError(404, 'no such recording');
    const m = await cp.recordings.get(id);
    if (!m) throw new HttpError(404, 'no such recording');
    return m;
  };
  const path = (m: RecordingMeta) => cp.recordings.dataPath(m.id, m.format);
  /** A live recording's size so far: its data file as written (the entry's `bytes` is set at the seal). */
  const liveBytes = async (m: RecordingMeta): Promise<number> => {
    // An SSH file is renamed ID.cast → ID.raw when it turns raw, maybe after the entry was read.
    for (const f of m.protocol === 'ssh' ? [m.format, m.format === 'raw' ? 'asciicast' : 'raw'] as const : [m.format]) {
      try {
        return (await stat(cp.recordings.dataPath(m.id, f))).size;
      } catch { /* not under this name */ }
    }
    return m.bytes;
  };
  /** Indexes and statement rows of recently opened recordings, rebuilt when a file changes. */
  const cache = new ReaderCache();
  const opened = new Map<string, number>();
  /** Audits an auditor opening a recording (once a minute per auditor and recording, so seeking does not flood the log). */
  const auditOpen = async (who: Actor, m: RecordingMeta, how: string) => {
    const key = `${who.subject}\n${m.id}\n${how}`;
    const last = opened.get(key) ?? 0;
    if (Date.now() - last < 60_000) return;
    opened.set(key, Date.now());
    if (opened.size > 5000) opened.clear();
    await cp.audit.append(auditBy(who, 'recording.open', { recording: m.id, user: m.user, target: m.target, how }));
  };

  return [
    {
      // The sessions page: newest first from the index, one page per call (`next_cursor`).
      method: 'GET', path: '/api/v1/ui/sessions',
      handler: async ({ identity, url }) => {
        requireAudit(cp, identity);
        const index = requireIndex(cp);
        const query = indexCall(() => sessionsRequest(url.searchParams));
        let page;
        try {
          page = await index.sessions(query);
        } catch (err) {
          throw indexError(err);
        }
        const live = new Map(cp.sessions.list().map((s) => [s.recordingId, s]));
        return {
          sessions: await Promise.all(page.sessions.map(async (m) => ({ ...m, ...(m.status === 'live' ? { bytes: await liveBytes(m) } : {}), liveSession: live.get(m.id)?.id ?? null }))),
          next_cursor: page.next ?? null,
          index: index.status(),
        };
      },
    },
    {
      method: 'GET', path: '/api/v1/ui/recordings/:id',
      handler: async ({ identity, params }) => {
        requireAudit(cp, identity);
        const m = await meta(params.id!);
        const live = cp.sessions.list().find((s) => s.recordingId === m.id);
        const base = { meta: m, liveSession: live?.id ?? null };
        if (m.format === 'asciicast') {
          await auditOpen(identity, m, 'replay');
          return { ...base, index: await castIndex(path(m), cache) };
        }
        if (m.format === 'raw') {
          // Replayed from the rendered events; the byte view (size, SHA-256, hex head per stream) beside it.
          await auditOpen(identity, m, 'replay');
          return { ...base, index: await rawCastIndex(path(m), cache), raw: await rawSummary(path(m), cache) };
        }
        await auditOpen(identity, m, 'statements');
        return { ...base, statements: await statementRows(path(m), cache) };
      },
    },
    {
      // The asciicast for the player, streamed (never read whole into memory).
      method: 'GET', path: '/api/v1/ui/recordings/:id/cast',
      handler: async ({ identity, params, res, url }) => {
        requireAudit(cp, identity);
        const m = await meta(params.id!);
        if (m.format === 'jsonl') throw new HttpError(400, 'not a terminal recording');
        await auditOpen(identity, m, 'replay');
        const p = path(m);
        const from = url.searchParams.get('from');
        if (m.format === 'raw' && from === null) {
          // Rendered while it streams (raw-reader.ts).
          res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/x-asciicast; charset=utf-8' });
          await pipeline(Readable.from(rawAsCast(p)), res);
          return undefined;
        }
        if (from !== null) {
          // A window with a keyframe: seeking a long recording never ships the whole file.
          const t = Number(from);
          const span = Number(url.searchParams.get('span') ?? '600');
          if (!Number.isFinite(t) || t < 0 || !Number.isFinite(span) || span <= 0 || span > 3600) throw new HttpError(400, '"from" and "span" are seconds (span up to 3600)');
          const body = m.format === 'raw' ? await rawCastWindow(p, t, span) : await castWindow(p, await castIndex(p, cache), t, span);
          res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/x-asciicast; charset=utf-8', 'content-length': Buffer.byteLength(body) });
          res.end(body);
          return undefined;
        }
        const st = await stat(p);
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/x-asciicast; charset=utf-8', 'content-length': st.size });
        await new Promise<void>((resolve, reject) => {
          const s = createReadStream(p, { start: 0, end: st.size - 1 });
          s.once('error', reject);
          s.once('end', resolve);
          s.pipe(res);
        });
        return undefined;
      },
    },
    {
      method: 'GET', path: '/api/v1/ui/recordings/:id/statements/:n/params',
      handler: async ({ identity, params }) => {
        requireAudit(cp, identity);
        const m = await meta(params.id!);
        if (m.format !== 'jsonl') throw new HttpError(400, 'not a Postgres recording');
        const n = Number(params.n);
        if (!Number.isInteger(n) || n < 1) throw new HttpError(400, 'bad statement number');
        await cp.audit.append(auditBy(identity, 'recording.params', { recording: m.id, line: n }));
        return { params: await statementParams(path(m), n) };
      },
    },
  ];
}
