import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Target, Config } from '../../config/config.types.js';
import type { Grant } from '../../access/access.types.js';
import type { AuditEntry } from '../../recorder/audit.types.js';
import { openControlPlane, type ControlPlane } from '../../app/control-plane.js';

/** Roles every test control plane has; `extra` YAML roles can be added. */
export const TEST_ROLES = `roles:
  - name: admin
    groups: [admins]
    can_request:
      - { targets: ["*"], logins: ["*"], max_duration: 8h }
  - name: approver
    groups: [approvers]
    can_approve: [admin]
    can_audit: true
    can_edit_policies: true
`;

/** The config `pam serve` would load for a test: dev issuer, embedded store, loopback port 0. */
export function testConfig(dataDir: string, policiesDir: string, targets: Target[]): Config {
  return {
    file: join(dataDir, 'pam.yaml'),
    listen: { http: { host: '127.0.0.1', port: 0 }, ssh: { host: '127.0.0.1', port: 0 }, postgres: { host: '127.0.0.1', port: 0 } },
    dataDir,
    store: 'embedded',
    policiesDir,
    identity: { dev: true, audience: 'pam-proxy', groupsClaim: 'groups' },
    reviewTimeoutMs: 5 * 60_000,
    targets,
    ssh: { envAllow: ['LANG', 'LC_*', 'TERM', 'TZ'] },
    postgres: { allowPlaintextTokens: false, maxMessageBytes: 64 * 1024 * 1024, redactParameters: false },
  };
}

export interface TestControlPlane {
  deps: ControlPlane;
  config: Config;
  dataDir: string;
  token(user: string, groups?: string[]): Promise<string>;
  grant(user: string, target: string, login: string, durationMs?: number): Promise<Grant>;
  revoke(grantId: string): Promise<void>;
  setSecret(name: string, value: string | Buffer): Promise<void>;
  audit(): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

/**
 * A real control plane in a temp dir: dev issuer, embedded store, vault, audit log, recording
 * catalog and session registry, as `pam serve` builds them. Brokers under test get `deps`.
 */
export async function startControlPlane(opts: { targets: Target[]; roles?: string; overrides?: Partial<Config> }): Promise<TestControlPlane> {
  const dataDir = await mkdtemp(join(tmpdir(), 'pam-test-'));
  const policiesDir = join(dataDir, 'policies');
  await mkdir(policiesDir);
  await writeFile(join(policiesDir, 'roles.yaml'), TEST_ROLES);
  if (opts.roles) await writeFile(join(policiesDir, 'extra.yaml'), opts.roles);
  const config: Config = { ...testConfig(dataDir, policiesDir, opts.targets), ...opts.overrides };
  const cp = await openControlPlane(config);
  const token = (user: string, groups: string[] = ['admins']) => cp.dev!.issue(user, groups);
  const identityOf = async (user: string, groups: string[]) => cp.identity.verify(await token(user, groups));
  return {
    deps: cp,
    config,
    dataDir,
    token,
    async grant(user, target, login, durationMs = 3600_000) {
      const req = await cp.access.request(await identityOf(user, ['admins']), { target, login, durationMs, reason: 'test' });
      const approved = await cp.access.approve(await identityOf('approver-bot', ['approvers']), req.id, 'ok');
      const grant = (await cp.access.listGrants(await identityOf('approver-bot', ['approvers']))).find((g) => g.id === approved.grantId);
      if (!grant) throw new Error('grant not found after approval');
      return grant;
    },
    async revoke(grantId) {
      await cp.access.revoke(await identityOf('approver-bot', ['approvers']), grantId, 'test revoke');
    },
    setSecret: (name, value) => cp.vault.set(name, Buffer.isBuffer(value) ? value : Buffer.from(value)),
    audit: () => cp.audit.read(),
    async close() {
      await cp.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
