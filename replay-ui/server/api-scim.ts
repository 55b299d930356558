/**
 * SCIM 2.0 over HTTP (RFC 7644): /scim/v2/Users for the IdP's provisioning client, with the
 * bearer token in `scim.token_file` (read at each request, so it can be rotated in place).
 * Routes parse and map errors to SCIM error bodies (RFC 7644 §3.12); access/scim.ts decides.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ScimError, toResource } from '../../access/scim.js';
import type { HttpDeps } from './http.types.js';
import { SECURITY_HEADERS } from './security-headers.js';
import type { Route, RequestContext } from './router.js';
import { auditEvent } from '../../recorder/audit-events.js';

const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';
const LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const MAX_BODY = 256 * 1024;

function send(res: ServerResponse, status: number, value?: unknown): undefined {
  const text = value === undefined ? '' : JSON.stringify(value);
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/scim+json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return undefined;
}

const sendError = (res: ServerResponse, status: number, detail: string, scimType?: string) =>
  send(res, status, { schemas: [ERROR_SCHEMA], status: String(status), ...(scimType ? { scimType } : {}), detail });

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/(scim\+)?json\b/i.test(type)) throw new ScimError(400, 'invalidSyntax', 'send application/scim+json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ScimError(400, 'tooLarge' as never, 'request body is too large');
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ScimError(400, 'invalidSyntax', 'the body is not valid JSON');
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function scimRoutes(cp: HttpDeps): Route[] {
  const scim = cp.config.scim;
  const service = cp.scim;
  if (!scim || !service) return [];

  /** Bearer check, then the handler; every failure becomes a SCIM error body. */
  const guarded = (fn: (ctx: RequestContext, base: string) => Promise<undefined>) => async (ctx: RequestContext) => {
    const { req, res } = ctx;
    try {
      let expected: string;
      try {
        expected = (await readFile(scim.tokenFile, 'utf8')).trim();
      } catch {
        return sendError(res, 500, 'the SCIM token file cannot be read');
      }
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!expected || !m || !timingSafeEqual(digest(m[1]!), digest(expected))) {
        await cp.audit.append(auditEvent('scim.refused', { why: m ? 'wrong token' : 'no bearer token', client: req.socket.remoteAddress }));
        res.setHeader('www-authenticate', 'Bearer');
        return sendError(res, 401, 'a valid bearer token is required');
      }
      return await fn(ctx, `http://${req.headers.host ?? 'proxy'}`);
    } catch (err) {
      if (err instanceof ScimError) return sendError(res, err.status, err.message, err.scimType);
      console.error('scim: internal error:', err);
      return sendError(res, 500, 'internal error');
    }
  };
  const common = { public: true, rawBody: true } as const;
  return [
    {
      ...common, method: 'GET', path: '/scim/v2/Users',
      handler: guarded(async ({ url, res }, base) => {
        const start = Number(url.searchParams.get('startIndex') ?? '1');
        const count = Number(url.searchParams.get('count') ?? '100');
        if (!Number.isFinite(start) || !Number.isFinite(count)) throw new ScimError(400, 'invalidValue', 'startIndex and count are numbers');
        const r = await service.list(url.searchParams.get('filter') ?? undefined, start, count);
        return send(res, 200, { schemas: [LIST_SCHEMA], totalResults: r.total, startIndex: Math.max(1, Math.floor(start)), itemsPerPage: r.users.length, Resources: r.users.map((u) => toResource(u, base)) });
      }),
    },
    { ...common, method: 'POST', path: '/scim/v2/Users', handler: guarded(async ({ req, res }, base) => send(res, 201, toResource(await service.create(await readJson(req)), base))) },
    { ...common, method: 'GET', path: '/scim/v2/Users/:id', handler: guarded(async ({ params, res }, base) => send(res, 200, toResource(await service.get(params.id!), base))) },
    { ...common, method: 'PUT', path: '/scim/v2/Users/:id', handler: guarded(async ({ params, req, res }, base) => send(res, 200, toResource(await service.replace(params.id!, await readJson(req)), base))) },
    { ...common, method: 'PATCH', path: '/scim/v2/Users/:id', handler: guarded(async ({ params, req, res }, base) => send(res, 200, toResource(await service.patch(params.id!, await readJson(req)), base))) },
    { ...common, method: 'DELETE', path: '/scim/v2/Users/:id', handler: guarded(async ({ params, res }) => { await service.delete(params.id!); return send(res, 204); }) },
    {
      ...common, method: 'GET', path: '/scim/v2/ServiceProviderConfig',
      handler: guarded(async ({ res }) => send(res, 200, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
        patch: { supported: true }, bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 }, filter: { supported: true, maxResults: 200 },
        changePassword: { supported: false }, sort: { supported: false }, etag: { supported: false },
        authenticationSchemes: [{ type: 'oauthbearertoken', name: 'OAuth Bearer Token', description: 'the token in scim.token_file' }],
      })),
    },
  ];
}
