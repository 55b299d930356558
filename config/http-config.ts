/**
 * The HTTP listener's transport settings (issue 12): `listen.http` may be `https://host:port`,
 * and the `http:` section holds `tls_cert`, `tls_key` and `allow_plaintext`.
 *
 * Tokens and session cookies cross this listener, so plain HTTP is only for loopback unless
 * `allow_plaintext: true` says a TLS-terminating proxy sits in front. A wildcard bind needs
 * `public_url`, because the Host header is checked against it.
 *
 * Limits, each reloadable by SIGHUP: `max_body_bytes` (a request body, default 1 MiB),
 * `headers_timeout` (a request's headers must arrive within it, default 20s, against slowloris)
 * and `request_timeout` (the whole request, default 60s).
 */
import type { HttpConfig, Listen } from './config.types.js';
import { parseDuration } from './duration.js';

export const HTTP_KEYS = ['tls_cert', 'tls_key', 'allow_plaintext', 'max_body_bytes', 'headers_timeout', 'request_timeout'];

/** The HTTP limits when the file names none (reloadable: app/reload.ts). */
export const DEFAULT_HTTP_LIMITS = { maxBodyBytes: 1024 * 1024, headersTimeoutMs: 20_000, requestTimeoutMs: 60_000 } as const;

export class HttpConfigError extends Error {
  constructor(public readonly key: string, public readonly why: string) {
    super(`${key}: ${why}`);
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `https://127.0.0.1:8443/` → { scheme: 'https', address: '127.0.0.1:8443' }; no scheme → http. */
export function splitScheme(value: string): { scheme: 'http' | 'https'; address: string } {
  const m = /^(https?):\/\/([^/]+)\/?$/.exec(value);
  if (!m) return { scheme: 'http', address: value };
  return { scheme: m[1] as 'http' | 'https', address: m[2]! };
}

export const isWildcard = (host: string) => host === '0.0.0.0' || host === '::' || host === '[::]';

export function parseHttpSection(
  raw: unknown,
  scheme: 'http' | 'https',
  listen: Listen,
  publicUrl: string | undefined,
  rel: (p: string) => string,
  isLoopback: (host: string) => boolean,
): HttpConfig {
  if (raw !== undefined && !isObj(raw)) throw new HttpConfigError('http', `must be a mapping: { ${HTTP_KEYS.join(', ')} }`);
  const h = raw ?? {};
  for (const k of Object.keys(h)) if (!HTTP_KEYS.includes(k)) throw new HttpConfigError(`http.${k}`, `unknown key (expected one of: ${HTTP_KEYS.join(', ')})`);
  const text = (k: string) => {
    const v = h[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.trim() === '') throw new HttpConfigError(`http.${k}`, 'must be a non-empty string');
    return v;
  };
  const cert = text('tls_cert');
  const key = text('tls_key');
  if (!!cert !== !!key) throw new HttpConfigError(cert ? 'http.tls_key' : 'http.tls_cert', 'tls_cert and tls_key go together');
  if (scheme === 'https' && !cert) throw new HttpConfigError('http.tls_cert', 'is required when listen.http is https://… (with http.tls_key)');
  const allow = h.allow_plaintext;
  if (allow !== undefined && typeof allow !== 'boolean') throw new HttpConfigError('http.allow_plaintext', 'must be true or false');
  const tls = cert && key ? { cert: rel(cert), key: rel(key) } : undefined;
  if (!tls && !isLoopback(listen.host) && allow !== true) {
    throw new HttpConfigError('listen.http', `${listen.host} is beyond loopback: tokens and cookies would cross the network in clear; set http.tls_cert and http.tls_key (or listen on https://…), or http.allow_plaintext: true behind a TLS-terminating proxy`);
  }
  if (isWildcard(listen.host) && !publicUrl) {
    throw new HttpConfigError('public_url', `is required when listen.http is ${listen.host} (the Host header of every request is checked against it)`);
  }
  if (tls && publicUrl?.startsWith('http://') && allow !== true) {
    throw new HttpConfigError('public_url', 'is http:// but the listener serves TLS; use https://');
  }
  const limit = (k: string, min: number, max: number, parse: (v: unknown) => number) => {
    const v = h[k];
    if (v === undefined || v === null) return undefined;
    const n = parse(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new HttpConfigError(`http.${k}`, `must be from ${min} to ${max}${k.endsWith('timeout') ? ' ms (e.g. 20s)' : ''}`);
    return n;
  };
  const bytes = (v: unknown) => (typeof v === 'number' ? v : NaN);
  const ms = (k: string) => (v: unknown) => {
    if (typeof v !== 'string') throw new HttpConfigError(`http.${k}`, 'must be a duration like 20s');
    try {
      return parseDuration(v);
    } catch (e) {
      throw new HttpConfigError(`http.${k}`, (e as Error).message);
    }
  };
  const maxBodyBytes = limit('max_body_bytes', 1024, 64 * 1024 * 1024, bytes);
  const headersTimeoutMs = limit('headers_timeout', 1000, 600_000, ms('headers_timeout'));
  const requestTimeoutMs = limit('request_timeout', 1000, 3600_000, ms('request_timeout'));
  if (headersTimeoutMs !== undefined && headersTimeoutMs > (requestTimeoutMs ?? DEFAULT_HTTP_LIMITS.requestTimeoutMs)) {
    throw new HttpConfigError('http.headers_timeout', 'must not be longer than http.request_timeout');
  }
  return {
    ...(tls ? { tls } : {}), allowPlaintext: allow === true,
    ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
    ...(headersTimeoutMs !== undefined ? { headersTimeoutMs } : {}),
    ...(requestTimeoutMs !== undefined ? { requestTimeoutMs } : {}),
  };
}
