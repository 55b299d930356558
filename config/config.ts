import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import { parseDuration } from './duration.js';
import { DEFAULT_REVIEW_TIMEOUT_MS } from './defaults.js';
import { LifecycleConfigError, parseTargetLifecycle, parseTopLifecycle, TARGET_LIFECYCLE_KEYS, TOP_LIFECYCLE_KEYS } from './lifecycle-config.js';
import { EvidenceConfigError, parseEvidence, parseRecordingMode, parseRecordingTransfers } from './evidence-config.js';
import { HttpConfigError, parseHttpSection, splitScheme } from './http-config.js';
import { LoginConfigError, parseLoginLimits, LOGIN_KEYS, type LoginLimits } from './login-config.js';
import type { Config, HttpConfig, Listen, LoginConfig, Target } from './config.types.js';
import { ConfigError, bool, isObj, known, str, type Obj } from './config-read.js';
import { parseOps } from './config-ops.js';

export { ConfigError } from './config-read.js';

export function parseAddress(value: string, key: string): Listen {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  if (!m) throw new ConfigError(key, `"${value}" is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(key, `port ${port} is out of range`);
  return { host: (m[1] ?? m[2])!, port };
}

const ACTIONS = ['allow', 'deny', 'review', 'alert'] as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function parseLogins(v: unknown, path: string): Record<string, LoginConfig> {
  if (!isObj(v) || Object.keys(v).length === 0) throw new ConfigError(path, 'must map each login name to { secret: NAME }');
  const out: Record<string, LoginConfig> = {};
  for (const [login, spec] of Object.entries(v)) {
    const p = `${path}.${login}`;
    if (!isObj(spec)) throw new ConfigError(p, 'must be { secret: NAME }');
    known(spec, p, ['secret']);
    out[login] = { secret: str(spec, 'secret', p, true) };
  }
  return out;
}

function parseTarget(v: unknown, i: number, base: string): Target {
  const path = `targets[${i}]`;
  if (!isObj(v)) throw new ConfigError(path, 'must be a mapping');
  const name = str(v, 'name', path, true);
  if (!NAME.test(name)) throw new ConfigError(`${path}.name`, 'letters, digits, "_", "." and "-" only');
  const protocol = str(v, 'protocol', path, true);
  const addr = parseAddress(str(v, 'address', path, true), `${path}.address`);
  const defaultAction = (str(v, 'default_action', path) ?? 'allow') as Target['defaultAction'];
  if (!ACTIONS.includes(defaultAction)) throw new ConfigError(`${path}.default_action`, `must be one of ${ACTIONS.join(', ')}`);
  const logins = parseLogins(v.logins, `${path}.logins`);
  const lifecycle = (p: 'ssh' | 'postgres') => lifecycleOf(() => parseTargetLifecycle(v, path, p, Object.keys(logins)));
  if (protocol === 'ssh') {
    known(v, path, ['name', 'protocol', 'address', 'host_key', 'logins', 'default_action', 'recording', ...TARGET_LIFECYCLE_KEYS]);
    const hostKey = str(v, 'host_key', path, true);
    if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|rsa-sha2-(256|512)) [A-Za-z0-9+/=]+/.test(hostKey)) {
      throw new ConfigError(`${path}.host_key`, 'must be an OpenSSH public key line, e.g. "ssh-ed25519 AAAA…"');
    }
    const transfers = lifecycleOf(() => parseRecordingTransfers(v, path));
    return { name, protocol, host: addr.host, port: addr.port, hostKey: hostKey.trim(), logins, defaultAction, ...lifecycle('ssh'), ...recordingOf(v, path), ...(transfers ? { recordTransfers: transfers } : {}) };
  }
  if (protocol === 'postgres') {
    known(v, path, ['name', 'protocol', 'address', 'database', 'tls', 'ca_file', 'logins', 'default_action', 'recording', ...TARGET_LIFECYCLE_KEYS]);
    const tls = (str(v, 'tls', path) ?? 'prefer') as 'disable' | 'prefer' | 'require' | 'verify-full';
    if (!['disable', 'prefer', 'require', 'verify-full'].includes(tls)) {
      throw new ConfigError(`${path}.tls`, 'must be disable, prefer, require or verify-full');
    }
    const caFile = str(v, 'ca_file', path);
    if (tls === 'verify-full' && !caFile) throw new ConfigError(`${path}.ca_file`, 'is required with tls: verify-full');
    return {
      name, protocol, host: addr.host, port: addr.port,
      database: str(v, 'database', path, true), tls,
      caFile: caFile && (isAbsolute(caFile) ? caFile : resolve(base, caFile)),
      logins, defaultAction, ...lifecycle('postgres'), ...recordingOf(v, path),
    };
  }
  throw new ConfigError(`${path}.protocol`, `"${protocol}" is not supported (ssh or postgres)`);
}

function lifecycleOf<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LifecycleConfigError) throw new ConfigError(e.key, e.why);
    if (e instanceof EvidenceConfigError) throw new ConfigError(e.key, e.message);
    throw e;
  }
}

function recordingOf(v: Obj, path: string): { recordingMode?: 'strict' | 'best-effort' } {
  const mode = lifecycleOf(() => parseRecordingMode(v, path));
  return mode ? { recordingMode: mode } : {};
}

/** Validates a parsed YAML document. `file` resolves relative paths. */
export function parseConfig(doc: unknown, file: string): Config {
  if (!isObj(doc)) throw new ConfigError('(root)', 'the file must hold a YAML mapping');
  known(doc, '', ['listen', 'data_dir', 'store', 'policies_dir', 'identity', 'targets', 'ssh', 'postgres', 'review_timeout', 'log', 'audit_export', 'shutdown_grace', 'index', 'evidence', 'http', ...LOGIN_KEYS, ...TOP_LIFECYCLE_KEYS]);
  const base = dirname(file);
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));

  if (!isObj(doc.listen)) throw new ConfigError('listen', 'is required: { ssh, postgres, http } addresses');
  known(doc.listen, 'listen', ['ssh', 'postgres', 'http', 'metrics']);
  const listen: Config['listen'] = {};
  let httpScheme: 'http' | 'https' = 'http';
  for (const k of ['ssh', 'postgres', 'http', 'metrics'] as const) {
    let a = str(doc.listen, k, 'listen');
    if (a && k === 'http') ({ scheme: httpScheme, address: a } = splitScheme(a));
    if (a) listen[k] = parseAddress(a, `listen.${k}`);
  }
  if (!listen.http) throw new ConfigError('listen.http', 'is required (the API and the CLI use it)');

  const store = str(doc, 'store', '') ?? 'embedded';
  if (store !== 'embedded' && !/^rediss?:\/\//.test(store)) throw new ConfigError('store', 'must be "embedded" or a redis:// URL');

  if (!isObj(doc.identity)) throw new ConfigError('identity', 'is required: { issuer, audience } or { dev: true }');
  known(doc.identity, 'identity', ['issuer', 'audience', 'groups_claim', 'dev']);
  const dev = bool(doc.identity, 'dev', 'identity', false);
  const issuer = str(doc.identity, 'issuer', 'identity', !dev);
  if (issuer && !dev && !/^https?:\/\//.test(issuer)) throw new ConfigError('identity.issuer', 'must be an http(s) URL');
  const identity = {
    dev,
    issuer,
    audience: str(doc.identity, 'audience', 'identity') ?? 'pam-proxy',
    groupsClaim: str(doc.identity, 'groups_claim', 'identity') ?? 'groups',
  };

  const rawTargets = doc.targets ?? [];
  if (!Array.isArray(rawTargets)) throw new ConfigError('targets', 'must be a list');
  const targets = rawTargets.map((t, i) => parseTarget(t, i, base));
  const seen = new Set<string>();
  targets.forEach((t, i) => {
    if (seen.has(t.name)) throw new ConfigError(`targets[${i}].name`, `"${t.name}" is defined twice`);
    seen.add(t.name);
  });

  const ssh = isObj(doc.ssh) ? doc.ssh : {};
  if (doc.ssh !== undefined && !isObj(doc.ssh)) throw new ConfigError('ssh', 'must be a mapping');
  known(ssh, 'ssh', ['host_key_file', 'env_allow']);
  const envAllow = ssh.env_allow ?? ['LANG', 'LC_*', 'TERM', 'TZ'];
  if (!Array.isArray(envAllow) || envAllow.some((e) => typeof e !== 'string')) throw new ConfigError('ssh.env_allow', 'must be a list of names');
  const hostKeyFile = str(ssh, 'host_key_file', 'ssh');

  const pg = isObj(doc.postgres) ? doc.postgres : {};
  if (doc.postgres !== undefined && !isObj(doc.postgres)) throw new ConfigError('postgres', 'must be a mapping');
  known(pg, 'postgres', ['tls_cert', 'tls_key', 'allow_plaintext_tokens', 'max_message_bytes', 'redact_parameters', 'upstream_pool']);
  const maxMessageBytes = pg.max_message_bytes ?? 64 * 1024 * 1024;
  if (typeof maxMessageBytes !== 'number' || !Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024) {
    throw new ConfigError('postgres.max_message_bytes', 'must be a whole number of bytes, at least 1024');
  }
  const tlsCert = str(pg, 'tls_cert', 'postgres');
  const tlsKey = str(pg, 'tls_key', 'postgres');
  if (!!tlsCert !== !!tlsKey) throw new ConfigError(tlsCert ? 'postgres.tls_key' : 'postgres.tls_cert', 'tls_cert and tls_key go together');

  let reviewTimeoutMs = DEFAULT_REVIEW_TIMEOUT_MS;
  const rt = str(doc, 'review_timeout', '');
  if (rt) {
    try {
      reviewTimeoutMs = parseDuration(rt);
    } catch (e) {
      throw new ConfigError('review_timeout', (e as Error).message);
    }
  }

  const top = lifecycleOf(() => parseTopLifecycle(doc, base));
  let http: HttpConfig;
  try {
    http = parseHttpSection(doc.http, httpScheme, listen.http, top.publicUrl, rel, isLoopback);
  } catch (e) {
    if (e instanceof HttpConfigError) throw new ConfigError(e.key, e.why);
    throw e;
  }
  let login: LoginLimits;
  try {
    login = parseLoginLimits(doc);
  } catch (e) {
    if (e instanceof LoginConfigError) throw new ConfigError(e.key, e.why);
    throw e;
  }
  const dataDir = rel(str(doc, 'data_dir', '') ?? './data');
  return {
    ...top,
    http,
    login,
    file,
    listen,
    reviewTimeoutMs,
    dataDir,
    evidence: lifecycleOf(() => parseEvidence(doc.evidence, rel, dataDir)),
    store,
    policiesDir: rel(str(doc, 'policies_dir', '') ?? './policies'),
    identity,
    targets,
    ssh: { hostKeyFile: hostKeyFile && rel(hostKeyFile), envAllow: envAllow as string[] },
    postgres: {
      tlsCert: tlsCert && rel(tlsCert),
      tlsKey: tlsKey && rel(tlsKey),
      allowPlaintextTokens: bool(pg, 'allow_plaintext_tokens', 'postgres', false),
      maxMessageBytes,
      redactParameters: bool(pg, 'redact_parameters', 'postgres', false),
      upstreamPool: parseUpstreamPool(pg.upstream_pool),
    },
    ...parseOps(doc, base),
  };
}

export function loadConfig(file: string): Config {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError('(file)', `cannot read ${abs}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError('(yaml)', (err as Error).message.split('\n')[0]!);
  }
  return parseConfig(doc, abs);
}

export const isLoopback = (host: string) =>
  host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/** Defaults of `postgres.upstream_pool`: on, 8 idle connections per key, closed after 60 s idle. */
export const UPSTREAM_POOL_DEFAULTS = { size: 8, idleTimeoutMs: 60_000 } as const;

function parseUpstreamPool(v: unknown): { size: number; idleTimeoutMs: number } {
  if (v === undefined) return { ...UPSTREAM_POOL_DEFAULTS };
  if (v === false) return { size: 0, idleTimeoutMs: UPSTREAM_POOL_DEFAULTS.idleTimeoutMs };
  if (!isObj(v)) throw new ConfigError('postgres.upstream_pool', 'must be a mapping { size, idle_timeout } or false');
  known(v, 'postgres.upstream_pool', ['size', 'idle_timeout']);
  const size = v.size ?? UPSTREAM_POOL_DEFAULTS.size;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > 1000) {
    throw new ConfigError('postgres.upstream_pool.size', 'must be a whole number from 0 (off) to 1000');
  }
  let idleTimeoutMs: number = UPSTREAM_POOL_DEFAULTS.idleTimeoutMs;
  const it = str(v, 'idle_timeout', 'postgres.upstream_pool');
  if (it) {
    try {
      idleTimeoutMs = parseDuration(it);
    } catch (e) {
      throw new ConfigError('postgres.upstream_pool.idle_timeout', (e as Error).message);
    }
  }
  return { size, idleTimeoutMs };
}
