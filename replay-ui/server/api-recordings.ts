import { stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { HttpDeps } from './http.types.js';
import { RecordingCatalog } from '../../recorder/catalog.js';
import { BundleRefused, evidencePackage } from '../../recorder/evidence/bundle-source.js';
import { EXPORT_FORMATS, recordingText, streamBytes, type ExportFormat } from '../../recorder/export.js';
import { rawAsCast } from '../../recorder/raw-reader.js';
import { STREAMS, type RawStream } from '../../recorder/raw-frame.js';
import { verifyRecordingEvidence } from '../../recorder/evidence/evidence-verify.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { HttpError } from './http-errors.js';
import { requireAudit } from './route-capability.js';
import { field, type Route } from './router.js';
import { auditBy } from '../../recorder/audit-events.js';

/** Recordings, their export and verification, and live sessions: all need can_audit. */
export function recordingRoutes(cp: HttpDeps): Route[] {
  const meta = async (id: string) => {
    const m = await cp.recordings.get(id);
    if (!m) throw new HttpError(404, 'no such recording');
    return m;
  };
  return [
    { method: 'GET', path: '/api/v1/recordings', handler: async ({ identity }) => { requireAudit(cp, identity); return cp.recordings.list(); } },
    { method: 'GET', path: '/api/v1/recordings/:id', handler: async ({ identity, params }) => { requireAudit(cp, identity); return meta(params.id!); } },
    {
      method: 'GET', path: '/api/v1/recordings/:id/export',
      handler: async ({ identity, params, url, res }) => {
        requireAudit(cp, identity);
        const m = await meta(params.id!);
        const format = (url.searchParams.get('format') ?? (m.format === 'jsonl' ? 'jsonl' : 'asciicast')) as ExportFormat;
        if (!EXPORT_FORMATS.includes(format)) throw new HttpError(400, 'format must be asciicast, text, jsonl or raw');
        const path = cp.recordings.dataPath(m.id, m.format);
        const exact = (format === 'asciicast' && m.format === 'asciicast') || (format === 'jsonl' && m.format === 'jsonl');
        if (exact) {
          // Stored formats stream from disk: an hour-long recording never sits in memory.
          await cp.audit.append(auditBy(identity, 'recording.export', { recording: m.id, format }));
          const size = (await stat(path)).size;
          res.writeHead(200, {
            ...SECURITY_HEADERS,
            'content-type': format === 'asciicast' ? 'application/x-asciicast' : 'application/jsonl',
            'content-disposition': `attachment; filename="${m.id}.${format === 'asciicast' ? 'cast' : 'jsonl'}"`,
            'content-length': size,
          });
          await pipeline(createReadStream(path, { start: 0, end: Math.max(0, size - 1) }), res);
          return undefined;
        }
        if (m.format !== 'jsonl' && (format === 'raw' || format === 'asciicast')) {
          const stream = (url.searchParams.get('stream') ?? 'stdout') as RawStream;
          if (!STREAMS.includes(stream)) throw new HttpError(400, 'stream must be stdout, stderr or stdin');
          const ch = url.searchParams.get('channel');
          const channel = ch === null ? undefined : Number(ch);
          if (channel !== undefined && !(Number.isInteger(channel) && channel >= 0 && channel <= 0xffff)) throw new HttpError(400, 'channel must be a channel number');
          await cp.audit.append(auditBy(identity, 'recording.export', { recording: m.id, format, ...(format === 'raw' ? { stream } : {}) }));
          res.writeHead(200, {
            ...SECURITY_HEADERS,
            'content-type': format === 'raw' ? 'application/octet-stream' : 'application/x-asciicast',
            'content-disposition': `attachment; filename="${m.id}.${format === 'raw' ? `${stream}.bin` : 'cast'}"`,
          });
          // Rendered or cut from the frames while it streams (raw-reader.ts).
          await pipeline(Readable.from(format === 'raw' ? streamBytes(m, path, stream, channel) : rawAsCast(path)), res);
          return undefined;
        }
        if (format !== 'text') throw new HttpError(400, `a ${m.protocol} recording cannot be exported as ${format}`);
        const body = await recordingText(m, path);
        await cp.audit.append(auditBy(identity, 'recording.export', { recording: m.id, format }));
        res.writeHead(200, {
          ...SECURITY_HEADERS,
          'content-type': 'text/plain; charset=utf-8',
          'content-disposition': `attachment; filename="${m.id}.txt"`,
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
        return undefined;
      },
    },
    {
      // An evidence bundle's parts (the CLI fetches the bytes through /export and writes the folder).
      method: 'GET', path: '/api/v1/recordings/:id/evidence',
      handler: async ({ identity, params }) => {
        requireAudit(cp, identity);
        if (!RecordingCatalog.isId(params.id!)) throw new HttpError(404, 'no such recording');
        let pkg;
        try {
          pkg = await evidencePackage(cp.evidence, cp.evidenceSources, params.id!);
        } catch (err) {
          if (!(err instanceof BundleRefused)) throw err;
          await cp.audit.append(auditBy(identity, 'evidence.export_refused', { recording: params.id, why: err.message }));
          throw new HttpError(409, err.message);
        }
        await cp.audit.append(auditBy(identity, 'evidence.export', { recording: pkg.recording, checkpoint_size: pkg.tree_size, key_id: pkg.checkpoint.key_id }));
        return pkg;
      },
    },
    {
      // The data file exactly as stored (an evidence bundle carries the sealed bytes, whatever the format).
      method: 'GET', path: '/api/v1/recordings/:id/evidence/data',
      handler: async ({ identity, params, res }) => {
        requireAudit(cp, identity);
        const m = await meta(params.id!);
        const path = cp.recordings.dataPath(m.id, m.format);
        const size = (await stat(path)).size;
        await cp.audit.append(auditBy(identity, 'recording.export', { recording: m.id, format: m.format, via: 'evidence' }));
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/octet-stream', 'content-length': size });
        await pipeline(createReadStream(path, { start: 0, end: Math.max(0, size - 1) }), res);
        return undefined;
      },
    },
    {
      method: 'GET', path: '/api/v1/recordings/:id/verify',
      handler: async ({ identity, params }) => {
        requireAudit(cp, identity);
        if (!RecordingCatalog.isId(params.id!)) throw new HttpError(404, 'no such recording');
        // Against the seal in the signed log, never the catalog's own copy (and a recording whose
        // catalog entry was deleted is still found through its seal).
        await cp.evidence?.checkpoint();
        return verifyRecordingEvidence(cp.evidenceSources, params.id!);
      },
    },
    { method: 'GET', path: '/api/v1/sessions', handler: ({ identity }) => { requireAudit(cp, identity); return cp.sessions.list(); } },
    {
      method: 'POST', path: '/api/v1/sessions/:id/kill',
      handler: async ({ identity, params, body }) => {
        requireAudit(cp, identity);
        const reason = field(body, 'reason', { max: 300 }) ?? 'ended by an auditor';
        const live = cp.sessions.get(params.id!);
        if (!live) throw new HttpError(404, 'no such live session');
        await cp.audit.append(auditBy(identity, 'session.kill', { session: live.id, user: live.user, target: live.target, reason }));
        cp.sessions.kill(live.id, `session terminated by ${identity.user}: ${reason}`);
        return { killed: live.id };
      },
    },
  ];
}
