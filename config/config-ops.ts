import { isAbsolute, resolve } from 'node:path';
import { parseDuration } from './duration.js';
import { bool, ConfigError, isObj, known, str, type Obj } from './config-read.js';
import type { AuditSinkConfig, LogConfig } from './config.types.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
const SINK_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const MiB = 1024 * 1024;

/** `log: { level, format }`. */
function parseLog(v: unknown): LogConfig {
  if (v === undefined || v === null) return { level: 'info' };
  if (!isObj(v)) throw new ConfigError('log', 'must be a mapping: { level, format }');
  known(v, 'log', ['level', 'format']);
  const level = (str(v, 'level', 'log') ?? 'info') as LogConfig['level'];
  if (!LEVELS.includes(level)) throw new ConfigError('log.level', `must be one of ${LEVELS.join(', ')}`);
  const format = str(v, 'format', 'log') as LogConfig['format'];
  if (format !== undefined && format !== 'json' && format !== 'pretty') throw new ConfigError('log.format', 'must be json or pretty');
  return { level, format };
}

function positiveInt(obj: Obj, key: string, path: string, dflt: number, min: number): number {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigError(`${path}.${key}`, `must be a whole number, at least ${min}`);
  return v;
}

/** One sink: `{ url, name?, ca_file?, secret_file?, batch_max?, spool_max_bytes? }`. */
function parseSink(v: unknown, i: number, base: string): AuditSinkConfig {
  const path = `audit_export[${i}]`;
  if (!isObj(v)) throw new ConfigError(path, 'must be a mapping: { url: "syslog://host:port" } or { url: "https://…", secret_file: FILE }');
  known(v, path, ['url', 'name', 'ca_file', 'secret_file', 'batch_max', 'spool_max_bytes']);
  const raw = str(v, 'url', path, true);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${path}.url`, 'is not a URL (syslog://host:port, syslog+tls://host:port or https://…)');
  }
  const scheme = url.protocol.slice(0, -1);
  const kind = scheme === 'syslog' || scheme === 'syslog+tls' ? 'syslog' : scheme === 'http' || scheme === 'https' ? 'webhook' : undefined;
  if (!kind) throw new ConfigError(`${path}.url`, `scheme "${scheme}" is not supported (syslog, syslog+tls, http, https)`);
  const tls = scheme === 'syslog+tls' || scheme === 'https';
  if (kind === 'syslog' && (!url.port || (url.pathname && url.pathname !== '/') || url.username)) {
    throw new ConfigError(`${path}.url`, 'must be syslog://host:port or syslog+tls://host:port (no path, no user)');
  }
  const secretFile = str(v, 'secret_file', path);
  if (kind === 'webhook' && !secretFile) throw new ConfigError(`${path}.secret_file`, 'is required for a webhook: the file whose content signs each batch (HMAC-SHA256)');
  if (kind === 'syslog' && secretFile) throw new ConfigError(`${path}.secret_file`, 'applies to webhooks only');
  if (url.username || url.password) throw new ConfigError(`${path}.url`, 'must not carry credentials; sign with secret_file instead');
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const name = str(v, 'name', path) ?? `${kind}-${i + 1}`;
  if (!SINK_NAME.test(name)) throw new ConfigError(`${path}.name`, 'lower-case letters, digits, "_" and "-" only, at most 32');
  const caFile = str(v, 'ca_file', path);
  if (caFile && !tls) throw new ConfigError(`${path}.ca_file`, 'needs a TLS url (syslog+tls:// or https://)');
  return {
    name, kind, url: raw, tls,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || (scheme === 'https' ? 443 : 80)),
    caFile: caFile && abs(caFile),
    secretFile: secretFile && abs(secretFile),
    batchMax: positiveInt(v, 'batch_max', path, 200, 1),
    spoolMaxBytes: positiveInt(v, 'spool_max_bytes', path, 64 * MiB, 4096),
  };
}

/** The operations keys: `log`, `audit_export`, `shutdown_grace`, `index`. `base` resolves relative paths. */
export function parseOps(doc: Obj, base: string): { log: LogConfig; auditExport: AuditSinkConfig[]; shutdownGraceMs: number; index: { enabled: boolean } } {
  const rawSinks = doc.audit_export ?? [];
  if (!Array.isArray(rawSinks)) throw new ConfigError('audit_export', 'must be a list of sinks');
  const auditExport = rawSinks.map((s, i) => parseSink(s, i, base));
  const names = new Set<string>();
  auditExport.forEach((s, i) => {
    if (names.has(s.name)) throw new ConfigError(`audit_export[${i}].name`, `"${s.name}" is used twice`);
    names.add(s.name);
  });
  let shutdownGraceMs = 30_000;
  const grace = str(doc, 'shutdown_grace', '');
  if (grace) {
    try {
      shutdownGraceMs = parseDuration(grace);
    } catch (e) {
      throw new ConfigError('shutdown_grace', (e as Error).message);
    }
  }
  return { log: parseLog(doc.log), auditExport, shutdownGraceMs, index: parseIndex(doc.index) };
}

/** `index: { enabled }` (issue 15): the search index and its worker; off, search and the sessions list answer 503. */
function parseIndex(v: unknown): { enabled: boolean } {
  if (v === undefined || v === null) return { enabled: true };
  if (!isObj(v)) throw new ConfigError('index', 'must be a mapping: { enabled: true|false }');
  known(v, 'index', ['enabled']);
  return { enabled: bool(v, 'enabled', 'index', true) };
}
