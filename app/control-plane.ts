import type { DevIssueOptions } from '../access/dev-issuer.js';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { Config } from '../config/config.types.js';
import type { IdentityVerifier } from '../access/identity.types.js';
import type { Store } from '../access/store.types.js';
import { openStore } from '../access/store.js';
import { StoreVault, openVault } from '../access/vault.js';
import { AccessService } from '../access/access-service.js';
import { createOidcVerifier } from '../access/identity.js';
import { loadDevIssuer, assertDevListenersLoopback } from '../access/dev-issuer.js';
import { DevSigninSecret, type SigninSecretCheck } from '../access/dev-signin.js';
import { FileAuditLog } from '../recorder/audit-log.js';
import { RecordingCatalog } from '../recorder/catalog.js';
import { createHash } from 'node:crypto';
import { openTransparencyLog, evidenceSources } from '../recorder/evidence/open-evidence.js';
import type { TransparencyLog } from '../recorder/evidence/transparency-log.js';
import type { EvidenceSources } from '../recorder/evidence/evidence-verify.js';
import { SessionRegistry } from '../access/live-sessions.js';
import { loadRoles, type Role } from '../policies/roles.js';
import type { BrokerDeps } from '../proxy/broker.types.js';
import { SshKeyBindings } from '../access/ssh-keys.js';
import { HoldService } from '../access/holds.js';
import { RejectionAudit } from '../access/rejection-audit.js';
import { LoginGuard } from '../proxy/login-guard.js';
import { OffboardingService, refusingVerifier } from '../access/offboarding.js';
import { CredentialUseLog } from '../access/credential-use.js';
import { RotationService } from '../access/rotation.js';
import { ScimService } from '../access/scim.js';
import { Notifier } from '../access/notifier.js';
import { probes, rotators } from './rotators.js';
import { DiscoveryService } from '../access/discovery.js';

import { createPolicyEngine, type RunningPolicyEngine } from '../policies/engine.js';
import { createLog, stateLog, type Log } from './log.js';
import { auditEvent } from '../recorder/audit-events.js';

/** Everything but the listeners: shared by `pam serve`, the `secret` commands and the tests. */
export interface ControlPlane extends BrokerDeps {
  store: Store;
  vault: StoreVault;
  audit: FileAuditLog;
  access: AccessService;
  sshKeys: SshKeyBindings;
  policy: RunningPolicyEngine;
  rejections: RejectionAudit;
  loginGuard: LoginGuard;
  holds: HoldService;
  log: Log;
  /** Store errors after open are logged once per outage; `storeState.up()` logs the recovery. */
  storeState: ReturnType<typeof stateLog>;
  /** The signed transparency log (absent without an `evidence` section). */
  evidence?: TransparencyLog;
  /** What `pam audit verify` and `pam recordings verify` read. */
  evidenceSources: EvidenceSources;
  /** Current roles (reloaded with the policy files). */
  roles: () => Role[];
  offboarding: OffboardingService;
  rotation: RotationService;
  scim: ScimService;
  discovery: DiscoveryService;
  uses: CredentialUseLog;
  /** Present with `identity: { dev: true }`: signs tokens for first runs and tests. */
  dev?: {
    issue(user: string, groups: string[], opts?: DevIssueOptions): Promise<string>;
    /** The current single-use secret (printed by `pam serve`, a new one after each use). */
    readonly signinSecret: string;
    /** Checks a sign-in's secret and uses it up (access/dev-signin.ts). */
    takeSigninSecret(given: string): SigninSecretCheck;
  };
  /** Re-reads roles from policies_dir; keeps the old ones and throws if a file is invalid. */
  reloadRoles(): Role[];
  close(): Promise<void>;
}

export async function openControlPlane(config: Config, opts: { log?: Log } = {}): Promise<ControlPlane> {
  const log = opts.log ?? createLog(config.log);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  let roles = loadRoles(config.policiesDir);
  let identity: IdentityVerifier;
  let dev: ControlPlane['dev'];
  if (config.identity.dev) {
    assertDevListenersLoopback(config.listen);
    const issuer = await loadDevIssuer(config.dataDir, config.identity.audience);
    identity = issuer.verifier;
    // Without it, any page in a browser on this machine could sign in as anyone (POST /auth/dev).
    // Single-use: the sign-in that uses it gets a new one printed on this terminal.
    const signin = new DevSigninSecret((next, why) => {
      if (why === 'used') log.info({}, `pam: dev sign-in secret: ${next} (single-use; the previous one was just used)`);
    });
    dev = { issue: (u, g, o) => issuer.issue(u, g, o), get signinSecret() { return signin.value; }, takeSigninSecret: (given) => signin.take(given) };
  } else {
    identity = createOidcVerifier({ issuer: config.identity.issuer!, audience: config.identity.audience, groupsClaim: config.identity.groupsClaim });
  }
  const storeState = stateLog(log.child({ component: 'store' }), 'state store');
  const store = await openStore(config.store, config.dataDir, {
    onError: (err) => storeState.down(err),
    // One line per change; the detail is a code (ECONNREFUSED), not a stack.
    onStateChange: (state, detail) => (state === 'unavailable' ? storeState.down(Object.assign(new Error(detail), { stack: `StoreUnavailable: ${detail}` })) : storeState.up()),
  });
  const vault = await openVault(config.store, store, config.dataDir);
  // Witness trouble is reported at most once a minute per witness: reporting it is itself an
  // audit entry, which asks for another checkpoint.
  const witnessReported = new Map<string, number>();
  const evidence = config.evidence
    ? await openTransparencyLog(config.evidence, config.dataDir, (w, err) => {
      const last = witnessReported.get(w.name) ?? 0;
      if (Date.now() - last < 60_000) return;
      witnessReported.set(w.name, Date.now());
      log.error({ component: 'evidence', witness: w.name, error: err.message }, 'witness did not take a checkpoint');
      void audit.append(auditEvent('evidence.witness_failed', { witness: w.name, error: err.message })).catch(() => undefined);
    })
    : undefined;
  const auditPath = join(config.dataDir, 'audit.log');
  const audit = await FileAuditLog.open(auditPath, { onLine: evidence ? (line) => evidence.add(line) : undefined });
  // Fail closed: a log that contradicts a signed checkpoint is not extended (nor signed again).
  if (evidence) {
    try {
      await evidence.assertExtendsWitnessed();
    } catch (err) {
      await audit.close();
      await store.close();
      throw err;
    }
  }
  const recordings = await RecordingCatalog.open(join(config.dataDir, 'recordings'), {
    // Every seal (SSH and Postgres) becomes an audit entry, so the signed log covers it.
    onSealed: async (meta, text) => {
      await audit.append(auditEvent('recording.sealed', {
        recording: meta.id, protocol: meta.protocol, format: meta.format, target: meta.target, user: meta.user,
        sha256: meta.sha256, bytes: meta.bytes, ...(meta.status === 'interrupted' ? { as_found_at_restart: true } : {}), catalog_sha256: createHash('sha256').update(text).digest('hex'),
      }));
    },
  });
  // Webhooks hear of requests, decisions, holds and refusals as they are audited. Only the
  // host is ever logged: a Slack webhook's path is itself a secret.
  const notifier = new Notifier({
    targets: () => config.notify ?? [],
    publicUrl: () => config.publicUrl,
    onGiveUp: (url, event, why) => log.warn({ component: 'notify', host: new URL(url).host, event, why }, 'notification not delivered'),
  });
  const stopNotify = audit.onAppend(notifier.onAudit);
  const sessions = new SessionRegistry();
  const uses = new CredentialUseLog(store);
  const rejections = new RejectionAudit(audit);
  const sshKeys = new SshKeyBindings(store, audit, Date.now, rejections);
  // The access service asks the offboarding service at every open, and offboarding revokes
  // through the access service: the late binding breaks that construction cycle.
  let offboarding: OffboardingService | undefined;
  const access = new AccessService({
    store, audit, roles: () => roles, targets: () => config.targets, acrValues: () => config.mfa?.acrValues ?? [],
    refusal: (who) => offboarding!.refusal(who), onAuthorized: (auth) => uses.record(auth),
  });
  await access.start();
  const rotation = new RotationService({ vault, targets: () => config.targets, rotators: rotators(), audit });
  offboarding = new OffboardingService({
    store, audit, access, sessions, sshKeys, uses, roles: () => roles, targets: () => config.targets,
    rotate: (secret, why) => rotation.rotate(secret, 'offboarding', why),
    windowMs: () => config.offboarding?.rotateUsedWithinMs ?? 30 * 86_400_000,
    recordedUses: async (sinceMs) => (await recordings.list()).filter((m) => Date.parse(m.start) >= sinceMs),
  });
  await offboarding.start();
  identity = refusingVerifier(identity, offboarding);
  // Rules and roles live in the same files: one watcher reloads both. A bad file keeps the
  // previous rules and roles in force, and the refusal is audited.
  const reportPolicyError = (err: Error) => {
    log.warn({ component: 'policy', error: err.message }, 'policy file refused; the previous rules stay in force');
    void audit.append(auditEvent('policy.refused', { why: err.message })).catch(() => undefined);
  };
  const policy = await createPolicyEngine({
    dir: config.policiesDir,
    // Read at each evaluation, so a SIGHUP reload of targets changes the defaults too.
    targets: (name) => config.targets.find((t) => t.name === name)?.defaultAction,
    roles: () => roles,
    onError: reportPolicyError,
    onReload: () => {
      try {
        roles = loadRoles(config.policiesDir);
        void audit.append(auditEvent('policy.loaded', { roles: roles.map((r) => r.name) })).catch(() => undefined);
      } catch (err) {
        reportPolicyError(err as Error);
      }
    },
  });
  return {
    config, identity, gate: access, access, sshKeys, offboarding, uses, rotation, scim: new ScimService({ store, audit, offboarding }),
    discovery: new DiscoveryService({ targets: () => config.targets, vault, audit, probes: probes() }), policy,
    holds: new HoldService({ store, audit, roles: () => roles, acrValues: () => config.mfa?.acrValues ?? [] }), vault, audit, recordings, sessions, store, dev, log, storeState, rejections,
    // Read at each new connection, so a SIGHUP's new limits apply without a restart.
    loginGuard: new LoginGuard(() => config.login),
    evidence, evidenceSources: evidenceSources(auditPath, recordings, evidence, config.evidence),
    roles: () => roles,
    reloadRoles() {
      roles = loadRoles(config.policiesDir);
      return roles;
    },
    async close() {
      policy.close();
      await rejections.close().catch(() => undefined);
      stopNotify();
      notifier.close();
      await offboarding!.stop();
      await access.stop();
      await audit.close();
      // The last entries get their checkpoint (and the witness its copy) before we exit.
      await evidence?.close();
      await store.close();
    },
  };
}
