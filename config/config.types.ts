import type { LoginLimits } from './login-config.js';

export type { LoginLimits } from './login-config.js';
/** The validated configuration. Field names mirror the YAML keys (see README "Configuration"). */
export interface Listen { host: string; port: number }

export interface LoginConfig { secret: string }

/** `targets[].rotation`: when and how the proxy changes the vaulted credentials of a target. */
export interface RotationConfig {
  /** `every: 24h`: rotate each login's secret this long after its last change. */
  everyMs?: number;
  /** `after_session: true`: rotate a login's secret after each session with it ends. */
  afterSession: boolean;
  /** SSH: the login's authorized keys file on the target, `%u` = login, default `~/.ssh/authorized_keys`. */
  authorizedKeys?: string;
  /** A login of the same target that changes the others' credentials; default each login itself. */
  login?: string;
}

/** `require_mfa` / `max_auth_age` on a target, a `can_request` entry or a role. */
export interface MfaRule {
  requireMfa?: boolean;
  maxAuthAgeMs?: number;
}

/** What happens to a session whose recording cannot be written (disk full, write error). */
export type RecordingMode = 'strict' | 'best-effort';

export interface SshTarget {
  name: string;
  protocol: 'ssh';
  host: string;
  port: number;
  /** Pinned host key, OpenSSH public-key line "type base64". */
  hostKey: string;
  logins: Record<string, LoginConfig>;
  /** Per-target policy default when no rule matches (issue 5); default "allow". */
  defaultAction: 'allow' | 'deny' | 'review' | 'alert';
  rotation?: RotationConfig;
  requireMfa?: boolean;
  maxAuthAgeMs?: number;
  /** `recording: { mode }`; absent = strict (the session ends when its recording fails). */
  recordingMode?: RecordingMode;
  /** `recording: { transfers }`: `content` also keeps each transferred file's content (once per SHA-256); default hash only. */
  recordTransfers?: 'hash' | 'content';
}

export interface PostgresTarget {
  name: string;
  protocol: 'postgres';
  host: string;
  port: number;
  database: string;
  tls: 'disable' | 'prefer' | 'require' | 'verify-full';
  caFile?: string;
  logins: Record<string, LoginConfig>;
  defaultAction: 'allow' | 'deny' | 'review' | 'alert';
  rotation?: RotationConfig;
  requireMfa?: boolean;
  maxAuthAgeMs?: number;
  recordingMode?: RecordingMode;
}

export type Target = SshTarget | PostgresTarget;

export interface IdentityConfig {
  dev: boolean;
  issuer?: string;
  audience: string;
  groupsClaim: string;
}

export const NOTIFY_EVENTS = ['request.created', 'request.decided', 'hold.created', 'session.denied'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** One `notify:` entry: a webhook for some events, signed with the key in `secret_file`. */
export interface NotifyConfig {
  url: string;
  events: NotifyEvent[];
  /** File holding the HMAC-SHA256 key for the `X-Pam-Signature` header. */
  secretFile?: string;
}

/** `log:` — one JSON object per line on stdout, or pretty lines for a person at a terminal. */
export interface LogConfig {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** Unset: pretty when stdout is a terminal, JSON otherwise. */
  format?: 'json' | 'pretty';
}

/** One `audit_export:` sink: every audit entry, in order, spooled on disk while it is down. */
export interface AuditSinkConfig {
  /** Label in metrics, logs and the spool file name (default: kind + position, e.g. syslog-1). */
  name: string;
  kind: 'syslog' | 'webhook';
  /** syslog://host:port, syslog+tls://host:port, http(s)://… */
  url: string;
  /** syslog: host and port; TLS for syslog+tls:// and https://. */
  host: string;
  port: number;
  tls: boolean;
  /** PEM CA bundle to verify the sink's certificate (default: the system's). */
  caFile?: string;
  /** webhook: file holding the HMAC-SHA256 key that signs each batch (`X-Pam-Signature`). */
  secretFile?: string;
  /** Most events per syslog write or webhook POST. */
  batchMax: number;
  /** The spool never grows past this; what does not fit is counted and audited as lost. */
  spoolMaxBytes: number;
}

/** `evidence:` (issue 16): signed transparency log over the audit log and recording seals. */
export interface EvidenceConfig {
  /** Ed25519 PKCS#8 PEM, outside data_dir; created 0600 when missing. */
  signingKeyFile: string;
  /** `file:///path` outside data_dir: receives every checkpoint. */
  witness?: string;
  /** PEM files of earlier signing keys, so checkpoints they signed keep verifying after a rotation. */
  previousPublicKeys: string[];
  /** How soon after new entries a checkpoint is signed (`checkpoint_interval`, default 5s). */
  checkpointIntervalMs: number;
  /** Names this log in its checkpoints (default: the host name). */
  origin: string;
}

/** The `http:` section and the scheme of `listen.http` (config/http-config.ts). */
export interface HttpConfig {
  /** TLS on the HTTP listener (cookies are then `Secure`). */
  tls?: { cert: string; key: string };
  /** Plain HTTP beyond loopback, for a TLS-terminating proxy in front. */
  allowPlaintext: boolean;
  /** `max_body_bytes`, `headers_timeout`, `request_timeout`; absent: DEFAULT_HTTP_LIMITS. Reloadable. */
  maxBodyBytes?: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface Config {
  /** Absolute path of the file this came from (for resolving relative paths). */
  file: string;
  listen: { ssh?: Listen; postgres?: Listen; http?: Listen; metrics?: Listen };
  dataDir: string;
  /** "embedded" or a redis:// URL. */
  store: string;
  policiesDir: string;
  identity: IdentityConfig;
  /** How long a command or statement held by a `review` rule waits for an approver. */
  reviewTimeoutMs: number;
  targets: Target[];
  /** Absent: the proxy runs, and says at start-up that evidence is unsigned. */
  evidence?: EvidenceConfig;
  ssh: { hostKeyFile?: string; envAllow: string[] };
  postgres: {
    tlsCert?: string;
    tlsKey?: string;
    /** Accept a cleartext token over plain TCP on non-loopback listeners. */
    allowPlaintextTokens: boolean;
    maxMessageBytes: number;
    redactParameters: boolean;
    /**
     * `postgres.upstream_pool`: idle pre-authenticated target connections kept per (target,
     * login, database, startup parameters, credential), reset with DISCARD ALL before reuse
     * (proxy/postgres/upstream-pool.ts). Absent or size 0: every session logs in upstream.
     */
    upstreamPool?: { size: number; idleTimeoutMs: number };
  };
  /** `mfa.acr_values`: `acr` values that count as multi-factor besides the `amr` methods. */
  mfa?: { acrValues: string[] };
  /** `scim.token_file`: the bearer token the IdP's SCIM client sends. */
  scim?: { tokenFile: string };
  notify?: NotifyConfig[];
  /** `offboarding.rotate_used_within`: credentials used this recently are rotated at offboarding (30d). */
  offboarding?: { rotateUsedWithinMs: number };
  /** Absent: plain HTTP on a loopback listener. */
  http?: HttpConfig;
  /** `login_timeout`, `max_unauthenticated_per_source` (config/login-config.ts); absent: the defaults. */
  login?: LoginLimits;
  /** `public_url`: how people reach the UI, for links in notifications; the HTTP Host check allows its host. */
  publicUrl?: string;
  /** Absent in hand-built configs (tests): level info, format by terminal. */
  log?: LogConfig;
  auditExport?: AuditSinkConfig[];
  /** How long SIGTERM lets live sessions finish before ending them (default 30 s). */
  shutdownGraceMs?: number;
  /** `index: { enabled }`: the search index and its worker thread (default on); off, search and the sessions list answer 503. */
  index?: { enabled: boolean };
}
