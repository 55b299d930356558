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

export interface Config {
  /** Absolute path of the file this came from (for resolving relative paths). */
  file: string;
  listen: { ssh?: Listen; postgres?: Listen; http?: Listen };
  dataDir: string;
  /** "embedded" or a redis:// URL. */
  store: string;
  policiesDir: string;
  identity: IdentityConfig;
  /** How long a command or statement held by a `review` rule waits for an approver. */
  reviewTimeoutMs: number;
  targets: Target[];
  ssh: { hostKeyFile?: string; envAllow: string[] };
  postgres: {
    tlsCert?: string;
    tlsKey?: string;
    /** Accept a cleartext token over plain TCP on non-loopback listeners. */
    allowPlaintextTokens: boolean;
    maxMessageBytes: number;
    redactParameters: boolean;
  };
  /** `mfa.acr_values`: `acr` values that count as multi-factor besides the `amr` methods. */
  mfa?: { acrValues: string[] };
  /** `scim.token_file`: the bearer token the IdP's SCIM client sends. */
  scim?: { tokenFile: string };
  notify?: NotifyConfig[];
  /** `offboarding.rotate_used_within`: credentials used this recently are rotated at offboarding (30d). */
  offboarding?: { rotateUsedWithinMs: number };
  /** `public_url`: how people reach the UI, for links in notifications. */
  publicUrl?: string;
}
