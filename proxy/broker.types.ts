import type { AccessGate } from '../access/access.types.js';
import type { IdentityVerifier } from '../access/identity.types.js';
import type { Vault } from '../access/vault.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { RecordingCatalog } from '../recorder/catalog.js';
import type { PolicyEngine } from '../policies/engine.types.js';
import type { Config } from '../config/config.types.js';
import type { SessionRegistry } from '../access/live-sessions.js';
import type { SshKeyBindings } from '../access/ssh-keys.js';
import type { HoldService } from '../access/holds.js';
import type { RejectionAudit } from '../access/rejection-audit.js';
import type { LoginGuard } from './login-guard.js';

/** Everything a protocol broker needs, passed in so tests wire real parts without mocks. */
export interface BrokerDeps {
  config: Config;
  identity: IdentityVerifier;
  gate: AccessGate;
  vault: Vault;
  audit: AuditLog;
  recordings: RecordingCatalog;
  sessions: SessionRegistry;
  /** Keys bound with `pam login --key` (SSH publickey auth); optional in tests. */
  sshKeys?: SshKeyBindings;
  /** Review holds (`review` verdicts wait here for an approver); absent = review acts as deny. */
  holds?: HoldService;
  /** Relayed bytes and SQL statements for the metrics; absent = not counted. */
  meter?: SessionMeter;
  /** Optional until the policy engine is wired; absent means allow everything. */
  policy?: PolicyEngine;
  /** Rate-limited audit of refused tokens, shared with the HTTP API; absent: every refusal is appended. */
  rejections?: RejectionAudit;
  /** login_timeout and the per-source cap, shared by both brokers; absent: each broker makes its own. */
  loginGuard?: LoginGuard;
}

/** Counters the brokers feed (Prometheus, app/metrics.ts); absent in most tests. */
export interface SessionMeter {
  bytes(protocol: 'ssh' | 'postgres', direction: 'client_to_target' | 'target_to_client', n: number): void;
  /** One SQL statement answered, with the policy action taken on it (allow when none spoke). */
  statement(action: string): void;
}

/** A running listener. */
export interface Listener {
  readonly port: number;
  /** Stops taking new connections; open sessions go on (graceful stop). */
  stopAccepting?(): void;
  close(): Promise<void>;
}
