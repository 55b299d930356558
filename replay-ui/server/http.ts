import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { TokenRejected, type Identity } from '../../access/identity.types.js';
import { AccessError } from '../../access/access-service.js';
import { StoreUnavailable } from '../../access/store.js';
import { allowedHosts, hostAllowed } from './host-check.js';
import { DEFAULT_HTTP_LIMITS } from '../../config/http-config.js';
import type { HttpDeps } from './http.types.js';
import type { HttpListener } from './http.types.js';
import { HttpError } from './http-errors.js';
import { SECURITY_HEADERS } from './security-headers.js';

export { SECURITY_HEADERS } from './security-headers.js';
import { Router, type RequestContext, type Route } from './router.js';
import { accessRoutes } from './api-access.js';
import { auditRoutes } from './api-audit.js';
import { recordingRoutes } from './api-recordings.js';
import { searchRoutes } from './api-search.js';
import { policyRoutes } from './api-policy.js';
import { lifecycleRoutes } from './api-lifecycle.js';
import { scimRoutes } from './api-scim.js';
import { auditEvent } from '../../recorder/audit-events.js';

export type Authenticator = (req: IncomingMessage) => Promise<Identity | undefined>;

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  if (!['POST', 'PUT', 'DELETE'].includes(req.method ?? '')) return {};
  const chunks: Buffer[] = [];
  let size = 0;
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw new HttpError(413, `request body is over the limit of ${maxBytes} bytes (http.max_body_bytes)`);
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, `request body is over the limit of ${maxBytes} bytes (http.max_body_bytes)`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'send JSON (content-type: application/json)');
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The proxy's HTTP listener: the JSON API under /api/v1 (bearer token or session cookie) and,
 * when given, the browser app. Every error is a JSON body `{ error: { code, message } }`;
 * unexpected errors are logged here and answered with a bare 500 that leaks nothing.
 */
export async function startHttpServer(cp: HttpDeps, listen: { host: string; port: number }, extra: { routes?: Route[]; authenticators?: Authenticator[]; onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void } = {}): Promise<HttpListener> {
  const router = new Router().add(
    { method: 'GET', path: '/healthz', public: true, handler: () => ({ ok: true }) },
    { method: 'GET', path: '/api/v1/whoami', handler: ({ identity }) => ({ ...identity, roles: cp.access.rolesFor(identity).map((r) => r.name) }) },
    ...accessRoutes(cp),
    ...auditRoutes(cp),
    ...recordingRoutes(cp),
    ...searchRoutes(cp),
    ...policyRoutes(cp),
    ...lifecycleRoutes(cp),
    ...scimRoutes(cp),
    ...(extra.routes ?? []),
  );

  const bearer: Authenticator = async (req) => {
    const h = req.headers.authorization;
    if (!h) return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m) throw new HttpError(401, 'Authorization must be "Bearer TOKEN"');
    try {
      return await cp.identity.verify(m[1]!);
    } catch (err) {
      if (err instanceof StoreUnavailable) throw err; // 503, not "bad token"
      const reason = err instanceof TokenRejected ? err.reason : 'token check failed';
      const event = auditEvent('token.rejected', { via: 'http', reason, client: req.socket.remoteAddress });
      await (cp.rejections ? cp.rejections.rejected(event) : cp.audit.append(event));
      throw new HttpError(401, `token rejected: ${reason}`);
    }
  };
  const authenticators = [bearer, ...(extra.authenticators ?? [])];

  let hosts = new Set<string>();
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    // /healthz tells nothing, and load balancers probe it by address.
    if (!hostAllowed(req, hosts) && req.url !== '/healthz') throw new HttpError(421, 'this Host is not served here (set public_url to the address people use)');
    const url = new URL(req.url ?? '/', 'http://proxy');
    const { route, params } = router.match(req.method ?? 'GET', url.pathname);
    let identity: Identity | undefined;
    if (!route.public) {
      for (const auth of authenticators) {
        identity = await auth(req);
        if (identity) break;
      }
      if (!identity) throw new HttpError(401, 'sign in first: send "Authorization: Bearer TOKEN"');
      // Browser sessions keep the identity they signed in with: ask again, so an offboarded
      // person's open tab stops working too (bearer tokens were already refused by the verifier).
      const gone = await cp.offboarding?.refusal(identity);
      if (gone) throw new HttpError(401, gone);
    }
    const body = route.rawBody ? {} : await readBody(req, cp.config.http?.maxBodyBytes ?? DEFAULT_HTTP_LIMITS.maxBodyBytes);
    const ctx: RequestContext = { req, res, url, params, identity: identity!, body };
    const result = await route.handler(ctx);
    if (result !== undefined && !res.headersSent) sendJson(res, route.status ?? 200, result);
  };

  const tlsOn = !!cp.config.http?.tls;
  const onRequest: RequestListener = (req, res) => {
    // Over TLS, browsers are told to keep to it (RFC 6797); never over plain HTTP.
    if (tlsOn) res.setHeader('strict-transport-security', 'max-age=31536000');
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) sendJson(res, err.status, { error: { code: err.code, message: err.message } });
      else if (err instanceof StoreUnavailable) {
        res.setHeader('retry-after', '5');
        sendJson(res, 503, { error: { code: 'unavailable', message: StoreUnavailable.MESSAGE } });
      } else if (err instanceof AccessError) sendJson(res, err.status, { error: { code: err.status === 403 ? 'forbidden' : err.status === 404 ? 'not_found' : err.status === 409 ? 'conflict' : 'bad_request', message: err.message } });
      else {
        console.error('http: internal error:', err instanceof Error ? err.stack : err);
        sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
      }
    });
  };
  const tls = cp.config.http?.tls;
  // Timeouts are checked every second (Node's default is every 30 s), so headers_timeout holds.
  const serverOptions = { connectionsCheckingInterval: 1000 };
  const server: Server = tls ? createTlsServer({ ...serverOptions, cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, onRequest) : createServer(serverOptions, onRequest);
  // WebSocket upgrades (the UI's live view) go to the hook; without one they are refused.
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    if (extra.onUpgrade && hostAllowed(req, hosts)) extra.onUpgrade(req, socket, head);
    else socket.destroy();
  });
  // The limits and allowed hosts as the config says now; SIGHUP calls it again (app/signals.ts).
  const reload = () => {
    server.headersTimeout = cp.config.http?.headersTimeoutMs ?? DEFAULT_HTTP_LIMITS.headersTimeoutMs;
    server.requestTimeout = cp.config.http?.requestTimeoutMs ?? DEFAULT_HTTP_LIMITS.requestTimeoutMs;
    const port = server.address() ? (server.address() as AddressInfo).port : listen.port;
    hosts = allowedHosts(cp.config, listen, port);
  };
  reload();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  reload();
  return {
    port,
    server,
    reload,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  } as HttpListener & { server: typeof server };
}
