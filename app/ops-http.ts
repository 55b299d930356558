import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Listen } from '../config/config.types.js';
import type { Log } from '../config/log.types.js';
import type { Listener } from '../proxy/broker.types.js';
import type { Readiness } from './health.js';

/**
 * The operations listener (`listen.metrics`): Prometheus text at `/metrics`, `/healthz` (the
 * process answers) and `/readyz` (200 when every check passes, else 503 naming the failing
 * checks). Read-only and without secrets, so it takes no token; bind it to a private address.
 */
export async function startOpsServer(listen: Listen, deps: { registry: Registry; readiness: Readiness; log: Log }): Promise<Listener> {
  const json = (status: number, body: unknown) => ({ status, type: 'application/json', body: JSON.stringify(body) + '\n' });
  const route = async (method: string, path: string) => {
    if (method !== 'GET' && method !== 'HEAD') return json(405, { error: 'only GET' });
    switch (path) {
      case '/metrics':
        return { status: 200, type: deps.registry.contentType, body: await deps.registry.metrics() };
      case '/healthz':
        return json(200, { status: 'ok' });
      case '/readyz': {
        const r = await deps.readiness.check();
        const failing = r.checks.filter((c) => !c.ok);
        return json(r.ok ? 200 : 503, { status: r.ok ? 'ready' : 'unavailable', ...(failing.length ? { failing: failing.map((c) => c.name) } : {}), checks: r.checks });
      }
      default:
        return json(404, { error: 'not found: /metrics, /healthz, /readyz' });
    }
  };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    route(req.method ?? 'GET', path).then(
      (r) => {
        res.writeHead(r.status, { 'content-type': r.type, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : r.body);
      },
      (err: Error) => {
        deps.log.error({ err, path }, 'ops endpoint failed');
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'internal error' }) + '\n');
      },
    );
  });
  server.on('error', (err) => deps.log.error({ err }, 'ops listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
