/**
 * `pam discover TARGET`: the privileged accounts on a target and whether the proxy manages
 * them (they are one of the target's vaulted logins). Probing is the protocol's business
 * (proxy/postgres/discover.ts, proxy/ssh/discover.ts); this service picks the login to probe
 * with, marks what is managed and audits the run.
 */
import type { Target } from '../config/config.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { Vault } from './vault.types.js';
import { auditEvent } from '../recorder/audit-events.js';

/** One account and why it counts as privileged (`superuser`, `uid 0`, `group sudo`, `authorized keys`…). */
export interface FoundAccount { account: string; privileges: string[] }

export interface DiscoveredAccount extends FoundAccount {
  /** The proxy holds its credential (a login of this target). */
  managed: boolean;
}

export interface DiscoveryProbe {
  probe(target: Target, login: string, credential: Buffer): Promise<FoundAccount[]>;
}

export class DiscoveryService {
  constructor(private readonly deps: { targets: () => Target[]; vault: Vault; audit: AuditLog; probes: Partial<Record<Target['protocol'], DiscoveryProbe>> }) {}

  async discover(targetName: string, actor: string): Promise<{ target: string; via: string; accounts: DiscoveredAccount[] }> {
    const target = this.deps.targets().find((t) => t.name === targetName);
    if (!target) throw new DiscoveryError(404, `unknown target "${targetName}"`);
    const probe = this.deps.probes[target.protocol];
    if (!probe) throw new DiscoveryError(400, `no ${target.protocol} discovery in this process`);
    // The rotation login is the one meant for the proxy's own work; else the first login.
    const via = target.rotation?.login ?? Object.keys(target.logins)[0]!;
    let credential: Buffer;
    try {
      credential = await this.deps.vault.reveal(target.logins[via]!.secret);
    } catch (err) {
      throw new DiscoveryError(400, `cannot discover ${target.name}: ${(err as Error).message}`);
    }
    let found: FoundAccount[];
    try {
      found = await probe.probe(target, via, credential);
    } catch (err) {
      await this.deps.audit.append(auditEvent('discover.failed', { actor, target: target.name, via, error: (err as Error).message }));
      throw new DiscoveryError(502, `discovery on ${target.name} failed: ${(err as Error).message}`);
    } finally {
      credential.fill(0);
    }
    const accounts = found.map((a) => ({ ...a, managed: Object.hasOwn(target.logins, a.account) })).sort((a, b) => a.account.localeCompare(b.account));
    await this.deps.audit.append(auditEvent('discover', { actor, target: target.name, via, accounts: accounts.length, unmanaged: accounts.filter((a) => !a.managed).map((a) => a.account) }));
    return { target: target.name, via, accounts };
  }
}

export class DiscoveryError extends Error {
  constructor(public readonly status: 400 | 404 | 502, message: string) {
    super(message);
    this.name = 'DiscoveryError';
  }
}
