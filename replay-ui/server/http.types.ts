import type { DevIssueOptions } from '../../access/dev-issuer.js';
import type { SigninSecretCheck } from '../../access/dev-signin.js';
import type { Config } from '../../config/config.types.js';
import type { IdentityVerifier } from '../../access/identity.types.js';
import type { AccessService } from '../../access/access-service.js';
import type { HoldService } from '../../access/holds.js';
import type { SshKeyBindings } from '../../access/ssh-keys.js';
import type { SessionRegistry } from '../../access/live-sessions.js';
import type { FileAuditLog } from '../../recorder/audit-log.js';
import type { RecordingCatalog } from '../../recorder/catalog.js';
import type { RecordingSearch } from '../../recorder/index/index.types.js';
import type { RunningPolicyEngine } from '../../policies/engine.js';
import type { Role } from '../../policies/roles.js';
import type { TransparencyLog } from '../../recorder/evidence/transparency-log.js';
import type { EvidenceSources } from '../../recorder/evidence/evidence-verify.js';
import type { RejectionAudit } from '../../access/rejection-audit.js';
import type { OffboardingService } from '../../access/offboarding.js';
import type { ScimService } from '../../access/scim.js';
import type { DiscoveryService } from '../../access/discovery.js';

/**
 * What the HTTP listener needs from the control plane, named here so the UI depends on the core
 * and not on the composition root (app/ builds one and passes it in).
 */
export interface HttpDeps {
  config: Config;
  identity: IdentityVerifier;
  access: AccessService;
  audit: FileAuditLog;
  recordings: RecordingCatalog;
  /** The catalog and full-text index (search, sessions list); absent: those routes answer 503. */
  index?: RecordingSearch;
  sessions: SessionRegistry;
  policy: RunningPolicyEngine;
  holds: HoldService;
  sshKeys: SshKeyBindings;
  roles: () => Role[];
  /** The signed transparency log; absent without an `evidence` section. */
  evidence?: TransparencyLog;
  /** What the verify routes read (the control plane builds it). */
  evidenceSources: EvidenceSources;
  /** Rate-limited audit of refused tokens (counted per source); absent: every refusal is appended. */
  rejections?: RejectionAudit;
  /** `pam offboard`, SCIM and the refusal of offboarded people's browser sessions. */
  offboarding?: OffboardingService;
  /** SCIM deprovisioning (served when `scim.token_file` is configured). */
  scim?: ScimService;
  /** `pam discover TARGET`. */
  discovery?: DiscoveryService;
  /** Present with `identity: { dev: true }`: signs tokens for first runs and tests. */
  dev?: {
    issue(user: string, groups: string[], opts?: DevIssueOptions): Promise<string>;
    /** The current single-use secret (printed by `pam serve`, a new one after each use). */
    readonly signinSecret: string;
    /** Checks a sign-in's secret and uses it up (access/dev-signin.ts). */
    takeSigninSecret(given: string): SigninSecretCheck;
  };
}

/** A running HTTP listener. */
export interface HttpListener {
  readonly port: number;
  /** Applies the HTTP limits and allowed hosts of the (reloaded) config to the running listener. */
  reload(): void;
  close(): Promise<void>;
}
