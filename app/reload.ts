import { isDeepStrictEqual } from 'node:util';
import { loadConfig } from '../config/config.js';
import type { Config, HttpConfig, LoginLimits } from '../config/config.types.js';
import { DEFAULT_LOGIN_TIMEOUT_MS, DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE } from '../config/login-config.js';

export type ReloadResult =
  | { ok: true; changed: string[]; needsRestart: string[] }
  | { ok: false; error: string };

/** Keys applied in place: every reader takes them from the shared Config at use time. */
const LIVE: { key: string; get: (c: Config) => unknown; set: (into: Config, from: Config) => void }[] = [
  { key: 'targets', get: (c) => c.targets, set: (i, f) => { i.targets = f.targets; } },
  { key: 'ssh.env_allow', get: (c) => c.ssh.envAllow, set: (i, f) => { i.ssh.envAllow = f.ssh.envAllow; } },
  { key: 'postgres.allow_plaintext_tokens', get: (c) => c.postgres.allowPlaintextTokens, set: (i, f) => { i.postgres.allowPlaintextTokens = f.postgres.allowPlaintextTokens; } },
  { key: 'postgres.max_message_bytes', get: (c) => c.postgres.maxMessageBytes, set: (i, f) => { i.postgres.maxMessageBytes = f.postgres.maxMessageBytes; } },
  { key: 'postgres.redact_parameters', get: (c) => c.postgres.redactParameters, set: (i, f) => { i.postgres.redactParameters = f.postgres.redactParameters; } },
  { key: 'log.level', get: (c) => c.log?.level, set: (i, f) => { i.log = { ...(i.log ?? { level: 'info' }), level: f.log?.level ?? 'info' }; } },
  { key: 'shutdown_grace', get: (c) => c.shutdownGraceMs, set: (i, f) => { i.shutdownGraceMs = f.shutdownGraceMs; } },
  // Read by the login guard at each new connection (a waiting one keeps its deadline).
  { key: 'login_timeout', get: (c) => c.login?.loginTimeoutMs, set: (i, f) => { i.login = { ...loginOf(i), loginTimeoutMs: loginOf(f).loginTimeoutMs }; } },
  { key: 'max_unauthenticated_per_source', get: (c) => c.login?.maxUnauthenticatedPerSource, set: (i, f) => { i.login = { ...loginOf(i), maxUnauthenticatedPerSource: loginOf(f).maxUnauthenticatedPerSource }; } },
  // Read per request, or applied to the listener by its reload() (app/signals.ts).
  { key: 'http.max_body_bytes', get: (c) => c.http?.maxBodyBytes, set: (i, f) => { i.http = { ...httpOf(i), maxBodyBytes: f.http?.maxBodyBytes }; } },
  { key: 'http.headers_timeout', get: (c) => c.http?.headersTimeoutMs, set: (i, f) => { i.http = { ...httpOf(i), headersTimeoutMs: f.http?.headersTimeoutMs }; } },
  { key: 'http.request_timeout', get: (c) => c.http?.requestTimeoutMs, set: (i, f) => { i.http = { ...httpOf(i), requestTimeoutMs: f.http?.requestTimeoutMs }; } },
  { key: 'public_url', get: (c) => c.publicUrl, set: (i, f) => { i.publicUrl = f.publicUrl; } },
];

const loginOf = (c: Config): LoginLimits => c.login ?? { loginTimeoutMs: DEFAULT_LOGIN_TIMEOUT_MS, maxUnauthenticatedPerSource: DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE };
const httpOf = (c: Config): HttpConfig => c.http ?? { allowPlaintext: false };

/** Keys whose new value the HTTP listener must be told about (HttpListener.reload). */
export const HTTP_RELOAD_KEYS = ['http.headers_timeout', 'http.request_timeout', 'public_url'];

/** Keys a running process cannot change (sockets, files and clients opened at start). */
const AT_START: { key: string; get: (c: Config) => unknown }[] = [
  { key: 'listen', get: (c) => c.listen },
  { key: 'data_dir', get: (c) => c.dataDir },
  { key: 'store', get: (c) => c.store },
  { key: 'policies_dir', get: (c) => c.policiesDir },
  { key: 'identity', get: (c) => c.identity },
  { key: 'review_timeout', get: (c) => c.reviewTimeoutMs },
  { key: 'ssh.host_key_file', get: (c) => c.ssh.hostKeyFile },
  { key: 'postgres.tls_cert', get: (c) => [c.postgres.tlsCert, c.postgres.tlsKey] },
  { key: 'postgres.upstream_pool', get: (c) => c.postgres.upstreamPool },
  { key: 'log.format', get: (c) => c.log?.format },
  { key: 'audit_export', get: (c) => c.auditExport },
  { key: 'http.tls_cert', get: (c) => c.http?.tls },
  { key: 'http.allow_plaintext', get: (c) => c.http?.allowPlaintext ?? false },
];

/**
 * SIGHUP: re-reads `file` and applies, in place on the running `config`, what can change
 * without a restart (targets, the per-session settings, the login and HTTP limits above). Live sessions keep running
 * on what they were opened with. A file that does not parse or validate changes nothing and the
 * result says why; keys that need a restart are named and left as they are.
 */
export function reloadConfig(config: Config, file: string): ReloadResult {
  let next: Config;
  try {
    next = loadConfig(file);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  const changed: string[] = [];
  for (const k of LIVE) {
    if (isDeepStrictEqual(k.get(config), k.get(next))) continue;
    k.set(config, next);
    changed.push(k.key);
  }
  const needsRestart = AT_START.filter((k) => !isDeepStrictEqual(k.get(config), k.get(next))).map((k) => k.key);
  return { ok: true, changed, needsRestart };
}
