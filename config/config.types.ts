/** The validated configuration. Field names mirror the YAML keys (see README "Configuration"). */
export interface Listen { host: string; port: number }

export interface LoginConfig { secret: string }

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
}

export type Target = SshTarget | PostgresTarget;

export interface IdentityConfig {
  dev: boolean;
  issuer?: string;
  audience: string;
  groupsClaim: string;
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
}
