/**
 * The Host header check (issue 12): a DNS-rebinding page in an admin's browser sends its own
 * host name, so every request and websocket upgrade must name this listener. Allowed: the
 * host of `public_url`, the listen address itself (unless a wildcard), and the loopback names
 * when the listener is on loopback. Each with the listener's port; without one only for the
 * scheme's default port.
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../../config/config.types.js';
import { isLoopback } from '../../config/config.js';
import { isWildcard } from '../../config/http-config.js';

const bracket = (host: string) => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);

export function allowedHosts(config: Config, listen: { host: string }, port: number): Set<string> {
  const scheme = config.http?.tls ? 'https' : 'http';
  const defaultPort = scheme === 'https' ? 443 : 80;
  const out = new Set<string>();
  const add = (host: string, p: number) => {
    const h = bracket(host.toLowerCase());
    out.add(`${h}:${p}`);
    if (p === defaultPort) out.add(h);
  };
  if (!isWildcard(listen.host)) add(listen.host, port);
  if (isLoopback(listen.host)) for (const h of ['localhost', '127.0.0.1', '::1']) add(h, port);
  if (config.publicUrl) {
    const u = new URL(config.publicUrl);
    out.add(u.host.toLowerCase());
    if (u.port === '') out.add(`${u.hostname.toLowerCase()}:${u.protocol === 'https:' ? 443 : 80}`);
  }
  return out;
}

/** True when the request's Host header names this listener. */
export function hostAllowed(req: IncomingMessage, allowed: Set<string>): boolean {
  const host = req.headers.host;
  return typeof host === 'string' && allowed.has(host.toLowerCase());
}
