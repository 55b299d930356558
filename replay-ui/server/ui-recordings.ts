import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { HttpDeps } from './http.types.js';
import { RecordingCatalog } from '../../recorder/catalog.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { HttpError } from './http-errors.js';
import { requireAudit } from './route-capability.js';
import type { Route } from './router.js';
import { castIndex, castWindow } from '../../recorder/cast-reader.js';
import { statementParams, statementRows } from '../../recorder/query-log-reader.js';
import { ReaderCache } from '../../recorder/reader-cache.js';
import { searchRecording, type SearchHit } from '../../recorder/search.js';

const MAX_HITS = 200;

/** Routes the browser app needs beyond the public API: session list with filters, search, replay data. */
export function uiRecordingRoutes(cp: HttpDeps): Route[] {
  const meta = async (id: string): Promise<RecordingMeta> => {
    if (!RecordingCatalog.isId(id)) throw new HttpError(404, 'no such recording');
    const m = await cp.recordings.get(id);
    if (!m) throw new HttpError(404, 'no such recording');
    return m;
  };
  const path = (m: RecordingMeta) => cp.recordings.dataPath(m.id, m.format);
  /** Indexes and statement rows of recently opened recordings, rebuilt when a file changes. */
  const cache = new ReaderCache();
  const denials = async (m: RecordingMeta): Promise<number> => {
    try {
      return m.format === 'asciicast' ? (await castIndex(path(m), cache)).denials : (await statementRows(path(m), cache)).denials;
    } catch {
      return 0;
    }
  };
  const opened = new Map<string, number>();
  /** Audits an auditor opening a recording (once a minute per auditor and recording, so seeking does not flood the log). */
  const auditOpen = async (actor: string, m: RecordingMeta, how: string) => {
    const key = `${actor}\n${m.id}\n${how}`;
    const last = opened.get(key) ?? 0;
    if (Date.now() - last < 60_000) return;
    opened.set(key, Date.now());
    if (opened.size > 5000) opened.clear();
    await cp.audit.append({ type: 'recording.open', actor, recording: m.id, user: m.user, target: m.target, how });
  };

  return [
    {
      method: 'GET', path: '/api/v1/ui/sessions',
      handler: async ({ identity, url }) => {
        requireAudit(cp, identity);
        const q = url.searchParams;
        const user = q.get('user')?.toLowerCase();
        const target = q.get('target')?.toLowerCase();
        const protocol = q.get('protocol');
        const status = q.get('status');
        const from = q.get('from') ? Date.parse(q.get('from')!) : undefined;
        const to = q.get('to') ? Date.parse(q.get('to')!) : undefined;
        const onlyDenials = q.get('denials') === '1';
        const live = new Map(cp.sessions.list().map((s) => [s.recordingId, s]));
        const out = [];
        for (const m of await cp.recordings.list()) {
          if (user && !m.user.toLowerCase().includes(user)) continue;
          if (target && !m.target.toLowerCase().includes(target)) continue;
          if (protocol && m.protocol !== protocol) continue;
          const isLive = m.status === 'live';
          if (status === 'live' && !isLive) continue;
          if (status === 'ended' && isLive) continue;
          const start = Date.parse(m.start);
          if (from !== undefined && Number.isFinite(from) && start < from) continue;
          if (to !== undefined && Number.isFinite(to) && start > to) continue;
          const d = await denials(m);
          if (onlyDenials && d === 0) continue;
          out.push({ ...m, denials: d, liveSession: live.get(m.id)?.id ?? null });
          if (out.length >= 1000) break;
        }
        return out;
      },
    },
    {
      method: 'GET', path: '/api/v1/ui/search',
      handler: async ({ identity, url }) => {
        requireAudit(cp, identity);
        const q = (url.searchParams.get('q') ?? '').trim();
        if (q.length < 2 || q.length > 200) throw new HttpError(400, '"q" must be 2 to 200 characters');
        const hits: SearchHit[] = [];
        let scanned = 0;
        for (const m of await cp.recordings.list()) {
          scanned++;
          try {
            hits.push(...(await searchRecording(m, path(m), q, Math.min(20, MAX_HITS - hits.length))));
          } catch {
            continue;
          }
          if (hits.length >= MAX_HITS) break;
        }
        await cp.audit.append({ type: 'recording.search', actor: identity.user, query: q, hits: hits.length });
        return { query: q, scanned, hits };
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
          await auditOpen(identity.user, m, 'replay');
          return { ...base, index: await castIndex(path(m), cache) };
        }
        await auditOpen(identity.user, m, 'statements');
        return { ...base, statements: await statementRows(path(m), cache) };
      },
    },
    {
      // The asciicast for the player, streamed (never read whole into memory).
      method: 'GET', path: '/api/v1/ui/recordings/:id/cast',
      handler: async ({ identity, params, res, url }) => {
        requireAudit(cp, identity);
        const m = await meta(params.id!);
        if (m.format !== 'asciicast') throw new HttpError(400, 'not a terminal recording');
        await auditOpen(identity.user, m, 'replay');
        const p = path(m);
        const from = url.searchParams.get('from');
        if (from !== null) {
          // A window with a keyframe: seeking a long recording never ships the whole file.
          const t = Number(from);
          const span = Number(url.searchParams.get('span') ?? '600');
          if (!Number.isFinite(t) || t < 0 || !Number.isFinite(span) || span <= 0 || span > 3600) throw new HttpError(400, '"from" and "span" are seconds (span up to 3600)');
          const body = await castWindow(p, await castIndex(p, cache), t, span);
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
        await cp.audit.append({ type: 'recording.params', actor: identity.user, recording: m.id, line: n });
        return { params: await statementParams(path(m), n) };
      },
    },
  ];
}
