/**
 * JSON Schema (draft 2020-12) of the YAML config, published by `pam config schema` so editors
 * (yaml-language-server: `# yaml-language-server: $schema=pam.schema.json`) complete keys and
 * flag typos. It states shapes; the parser (config.ts and its section files) stays the judge of
 * meaning (a login named by a rotation, paths outside data_dir) and `pam config check` runs it.
 * test/unit/config-schema.test.ts keeps the two in step: every key the parser accepts is here.
 */

import { NOTIFY_EVENTS } from './config.types.js';

type Schema = Record<string, unknown>;

const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', minLength: 1, description, ...extra });
const bool = (description: string): Schema => ({ type: 'boolean', description });
const duration = (description: string): Schema => str(description, { pattern: '^(\\d+(ms|s|m|h|d))+$' });
const address = (description: string): Schema => str(description, { pattern: '^(\\[[^\\]]+\\]|[^:\\s]+):\\d{1,5}$' });
const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: 'object', additionalProperties: false, properties, ...extra });
const ACTIONS = ['allow', 'deny', 'review', 'alert'];

const logins = {
  type: 'object', minProperties: 1, description: 'login name → { secret: NAME } (a vault secret)',
  additionalProperties: obj({ secret: str('vault secret holding the credential') }, { required: ['secret'] }),
};

const targetCommon: Record<string, Schema> = {
  name: str('target name: letters, digits, "_", "." and "-"', { pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' }),
  address: address('host:port of the target'),
  logins,
  default_action: { enum: ACTIONS, description: 'policy verdict when no rule matches (default allow)' },
  recording: obj({ mode: { enum: ['strict', 'best-effort'], description: 'strict (default): a recording failure ends the session' } }),
  require_mfa: bool('the token must show multi-factor sign-in'),
  max_auth_age: duration('longest time since the sign-in (auth_time)'),
};

const rotation = (ssh: boolean) => obj({
  every: duration('rotate this often (at least 1m)'),
  after_session: bool('rotate after each session'),
  login: str('which of the target’s logins rotates'),
  ...(ssh ? { authorized_keys: str('authorized_keys path on the target') } : {}),
});

const sshTarget = obj({
  ...targetCommon,
  protocol: { const: 'ssh' },
  host_key: str('pinned OpenSSH public key line, "ssh-ed25519 AAAA…"'),
  rotation: rotation(true),
}, { required: ['name', 'protocol', 'address', 'host_key', 'logins'] });

const postgresTarget = obj({
  ...targetCommon,
  protocol: { const: 'postgres' },
  database: str('database name on the target'),
  tls: { enum: ['disable', 'prefer', 'require', 'verify-full'], description: 'TLS to the target (default prefer)' },
  ca_file: str('CA bundle for tls: verify-full'),
  rotation: rotation(false),
}, { required: ['name', 'protocol', 'address', 'database', 'logins'] });

const sink = obj({
  url: str('syslog://host:port, syslog+tls://host:port, http(s)://… (webhook)', { pattern: '^(syslog|syslog\\+tls|https?)://' }),
  name: str('label in metrics, logs and the spool file', { pattern: '^[a-z0-9][a-z0-9_-]{0,31}$' }),
  ca_file: str('CA bundle for a TLS sink'),
  secret_file: str('webhook: file whose content is the HMAC-SHA256 key (X-Pam-Signature)'),
  batch_max: { type: 'integer', minimum: 1, description: 'most events per write or POST (default 200)' },
  spool_max_bytes: { type: 'integer', minimum: 4096, description: 'bound of the on-disk spool (default 64 MiB)' },
}, { required: ['url'] });

export function configSchema(): Schema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'pam-proxy configuration (pam serve --config FILE)',
    ...obj({
      listen: obj({
        ssh: address('SSH listener'),
        postgres: address('PostgreSQL listener'),
        http: str('API and UI listener: host:port or https://host:port'),
        metrics: address('operations listener: /metrics, /healthz, /readyz (no token: keep it private)'),
      }, { required: ['http'] }),
      data_dir: str('recordings, audit log, embedded state, vault (default ./data)'),
      store: str('"embedded" or a redis:// URL', { pattern: '^(embedded|rediss?://.+)$' }),
      policies_dir: str('role and rule files (default ./policies)'),
      identity: obj({
        issuer: str('OIDC issuer URL', { pattern: '^https?://' }),
        audience: str('expected token audience (default pam-proxy)'),
        groups_claim: str('claim holding the groups (default groups)'),
        dev: bool('built-in dev issuer; loopback listeners only'),
      }),
      targets: { type: 'array', items: { oneOf: [sshTarget, postgresTarget] } },
      ssh: obj({ host_key_file: str('the proxy’s SSH host key'), env_allow: { type: 'array', items: { type: 'string' } } }),
      postgres: obj({
        tls_cert: str('certificate for client TLS'), tls_key: str('its key'),
        allow_plaintext_tokens: bool('accept a cleartext token over plain TCP beyond loopback'),
        max_message_bytes: { type: 'integer', minimum: 1024 },
        redact_parameters: bool('keep bind parameters out of recordings'),
        upstream_pool: {
          description: 'idle pre-authenticated target connections per (target, login, database, startup parameters), reset with DISCARD ALL; false or size 0 turns it off (default size 8, idle_timeout 60s)',
          oneOf: [
            { const: false },
            obj({ size: { type: 'integer', minimum: 0, maximum: 1000 }, idle_timeout: duration('an idle pooled connection is closed after this long') }),
          ],
        },
      }),
      http: obj({
        tls_cert: str('certificate for HTTPS'), tls_key: str('its key'), allow_plaintext: bool('plain HTTP beyond loopback (TLS ends in front)'),
        max_body_bytes: { type: 'integer', minimum: 1024, description: 'largest request body (default 1 MiB; SIGHUP reloads it)' },
        headers_timeout: duration('a request’s headers must arrive within it (default 20s; SIGHUP reloads it)'),
        request_timeout: duration('a whole request must arrive within it (default 60s; SIGHUP reloads it)'),
      }),
      login_timeout: duration('a connection that has not logged in by then is closed, both ports (default 30s; SIGHUP reloads it)'),
      max_unauthenticated_per_source: { type: 'integer', minimum: 1, maximum: 100000, description: 'connections from one address not logged in yet (default 16; SIGHUP reloads it)' },
      review_timeout: duration('how long a held command or statement waits for an approver'),
      log: obj({ level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] }, format: { enum: ['json', 'pretty'], description: 'default: pretty on a terminal' } }),
      audit_export: { type: 'array', items: sink, description: 'SIEM sinks: every audit entry, in order, spooled while a sink is down' },
      shutdown_grace: duration('SIGTERM: how long live sessions may finish (default 30s)'),
      index: obj({ enabled: bool('the search index and its worker thread (default true); false: search and the sessions list answer 503') }),
      evidence: obj({
        signing_key_file: str('Ed25519 key outside data_dir'),
        witness: str('file:///absolute/path outside data_dir', { pattern: '^file:///' }),
        previous_public_keys: { type: 'array', items: { type: 'string', minLength: 1 } },
        checkpoint_interval: duration('how often checkpoints are signed'),
        origin: str('checkpoint origin line (default the host name)'),
      }, { required: ['signing_key_file'] }),
      mfa: obj({ acr_values: { type: 'array', items: { type: 'string' } } }),
      scim: obj({ token_file: str('bearer token the IdP’s SCIM client sends') }),
      notify: { type: 'array', items: obj({ url: str('webhook URL'), events: { type: 'array', items: { enum: [...NOTIFY_EVENTS] } }, secret_file: str('HMAC key file') }) },
      offboarding: obj({ rotate_used_within: duration('credentials used this recently are rotated at offboarding') }),
      public_url: str('how people reach the UI', { pattern: '^https?://' }),
    }, { required: ['listen', 'identity'] }),
  };
}
