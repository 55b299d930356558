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
import { FileAuditLog } from '../recorder/audit-log.js';
import { RecordingCatalog } from '../recorder/catalog.js';
import { SessionRegistry } from '../access/live-sessions.js';
import { loadRoles, type Role } from '../policies/roles.js';
import type { BrokerDeps } from '../proxy/broker.types.js';
import { SshKeyBindings } from '../access/ssh-keys.js';
import { HoldService } from '../access/holds.js';
import { createPolicyEngine, type RunningPolicyEngine } from '../policies/engine.js';
import { createLog, stateLog, type Log } from './log.js';

/** Everything but the listeners: shared by `pam serve`, the `secret` commands and the tests. */
export interface ControlPlane extends BrokerDeps {
  store: Store;
  vault: StoreVault;
  audit: FileAuditLog;
  access: AccessService;
  sshKeys: SshKeyBindings;
  policy: RunningPolicyEngine;
  holds: HoldService;
  log: Log;
  /** Store errors after open are logged once per outage; `storeState.up()` logs the recovery. */
  storeState: ReturnType<typeof stateLog>;
  /** Present with `identity: { dev: true }`: signs tokens for first runs and tests. */
  dev?: { issue(user: string, groups: string[], opts?: DevIssueOptions): Promise<string> };
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
    dev = { issue: (u, g, o) => issuer.issue(u, g, o) };
  } else {
    identity = createOidcVerifier({ issuer: config.identity.issuer!, audience: config.identity.audience, groupsClaim: config.identity.groupsClaim });
  }
  const storeState = stateLog(log.child({ component: 'store' }), 'state store');
  const store = await openStore(config.store, config.dataDir, { onError: (err) => storeState.down(err) });
  const vault = await openVault(config.store, store, config.dataDir);
  const audit = await FileAuditLog.open(join(config.dataDir, 'audit.log'));
  const recordings = await RecordingCatalog.open(join(config.dataDir, 'recordings'));
  const sessions = new SessionRegistry();
  const access = new AccessService({ store, audit, roles: () => roles, targets: () => config.targets, acrValues: () => config.mfa?.acrValues ?? [] });
  await access.start();
  // Rules and roles live in the same files: one watcher reloads both. A bad file keeps the
  // previous rules and roles in force, and the refusal is audited.
  const reportPolicyError = (err: Error) => {
    log.warn({ component: 'policy', error: err.message }, 'policy file refused; the previous rules stay in force');
    void audit.append({ type: 'policy.refused', error: err.message }).catch(() => undefined);
  };
  const policy = await createPolicyEngine({
    dir: config.policiesDir,
    // Read at each evaluation, so a SIGHUP reload of targets changes the defaults too.
    targets: (name) => config.targets.find((t) => t.name === name)?.defaultAction,
    onError: reportPolicyError,
    onReload: () => {
      try {
        roles = loadRoles(config.policiesDir);
        void audit.append({ type: 'policy.loaded', roles: roles.map((r) => r.name) }).catch(() => undefined);
      } catch (err) {
        reportPolicyError(err as Error);
      }
    },
  });
  return {
    config, identity, gate: access, access, sshKeys: new SshKeyBindings(store, audit), policy,
    holds: new HoldService({ store, audit, roles: () => roles }), vault, audit, recordings, sessions, store, dev, log, storeState,
    roles: () => roles,
    reloadRoles() {
      roles = loadRoles(config.policiesDir);
      return roles;
    },
    async close() {
      policy.close();
      await access.stop();
      await audit.close();
      await store.close();
    },
  };
}
