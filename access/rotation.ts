/**
 * Rotation of vaulted credentials: `pam secret rotate NAME`, `rotation: { every, after_session }`
 * per target, and offboarding. The protocol work is a CredentialRotator's; this service finds
 * the login a secret belongs to, takes the secret's lock (one rotation at a time across
 * processes and nodes), records the outcome on the secret (last rotated, last error) and
 * audits it, never with the secret.
 */
import type { Target } from '../config/config.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import type { StoreVault } from './vault.js';
import type { CredentialRotator } from './rotation.types.js';
import type { SessionRegistry, LiveSession } from './live-sessions.js';
import type { RotationOutcome } from './offboarding.js';
import { auditEvent } from '../recorder/audit-events.js';

/** A rotation that has not finished by then is presumed dead and its lock expires. */
const LOCK_MS = 5 * 60_000;
/** After a failure, the scheduler waits this long (or `every`, if shorter) before trying again. */
const RETRY_MS = 15 * 60_000;

export interface RotationDeps {
  vault: StoreVault;
  targets: () => Target[];
  rotators: Partial<Record<Target['protocol'], CredentialRotator>>;
  audit: AuditLog;
  now?: () => number;
}

/** One row of `pam secret list`. */
export interface SecretStatus {
  name: string;
  usedBy: string[];
  updatedAt: string;
  lastRotated?: string;
  /** When the schedule (`rotation.every`) rotates it next; absent without a schedule. */
  nextDue?: string;
  lastError?: string;
  lastErrorAt?: string;
}

export class RotationService {
  private readonly now: () => number;
  private readonly running = new Map<string, Promise<RotationOutcome>>();

  constructor(private readonly deps: RotationDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** The (target, login) pairs that use `secret`. */
  private usesOf(secret: string): { target: Target; login: string }[] {
    return this.deps.targets().flatMap((target) => Object.entries(target.logins).filter(([, l]) => l.secret === secret).map(([login]) => ({ target, login })));
  }

  /** Rotates `secret` at its target and in the vault. Never throws: a failure is an outcome with a reason. */
  rotate(secret: string, by: string, why = 'requested'): Promise<RotationOutcome> {
    // Two callers in this process (schedule and offboarding) share one run.
    let run = this.running.get(secret);
    if (!run) {
      run = this.run(secret, by, why).finally(() => this.running.delete(secret));
      this.running.set(secret, run);
    }
    return run;
  }

  private async run(secret: string, by: string, why: string): Promise<RotationOutcome> {
    const uses = this.usesOf(secret);
    const refuse = async (error: string, note = true): Promise<RotationOutcome> => {
      if (note) await this.deps.vault.noteRotationError(secret, error).catch(() => undefined);
      await this.deps.audit.append(auditEvent('secret.rotate.failed', { actor: by, name: secret, why, error }));
      return { secret, ok: false, error };
    };
    if (uses.length === 0) return refuse(`secret "${secret}" is not the credential of any target login, so there is nothing to rotate it at`, false);
    if (uses.length > 1) return refuse(`secret "${secret}" is shared by ${uses.map((u) => `${u.login}@${u.target.name}`).join(', ')}; rotation needs one secret per login`);
    const { target, login } = uses[0]!;
    const rotator = this.deps.rotators[target.protocol];
    if (!rotator) return refuse(`no ${target.protocol} rotator in this process`, false);
    const release = await this.deps.vault.lock(secret, LOCK_MS);
    if (!release) return refuse(`a rotation of "${secret}" is already running`, false);
    let current: Buffer | undefined;
    let via: { login: string; secret: Buffer } | undefined;
    try {
      try {
        current = await this.deps.vault.reveal(secret);
        const viaLogin = target.rotation?.login;
        if (viaLogin && viaLogin !== login) via = { login: viaLogin, secret: await this.deps.vault.reveal(target.logins[viaLogin]!.secret) };
      } catch (err) {
        return await refuse((err as Error).message);
      }
      current = await this.recover(secret, target, login, current, rotator, by);
      const old = current;
      let committed = false;
      try {
        await rotator.rotate({
          target, login, secretName: secret, current, via,
          // The old value stays beside the new one until the rotator has finished either way.
          commit: async (next) => {
            await this.deps.vault.set(secret, next, { rotated: true, keepPrevious: old });
            committed = true;
          },
        });
      } catch (err) {
        return await refuse(`rotation at ${login}@${target.name} failed, the old credential stays valid: ${(err as Error).message}`);
      } finally {
        // The rotator returned (done or undone): the vault's value is the one in force.
        if (committed) await this.deps.vault.dropPrevious(secret).catch(() => undefined);
      }
      await this.deps.audit.append(auditEvent('secret.rotate', { actor: by, name: secret, target: target.name, login, via: via?.login ?? login, why }));
      return { secret, ok: true };
    } finally {
      current?.fill(0);
      via?.secret.fill(0);
      await release();
    }
  }

  /**
   * A previous value left by a rotation that never finished (the process died between the vault
   * write and the target's change): keep whichever value the target accepts.
   */
  private async recover(secret: string, target: Target, login: string, current: Buffer, rotator: CredentialRotator, by: string): Promise<Buffer> {
    const previous = await this.deps.vault.revealPrevious(secret);
    if (!previous || !rotator.check) return current;
    if (await rotator.check(target, login, current)) {
      await this.deps.vault.dropPrevious(secret);
      previous.fill(0);
      return current;
    }
    if (await rotator.check(target, login, previous)) {
      await this.deps.vault.set(secret, previous);
      await this.deps.audit.append(auditEvent('secret.rotate.recovered', { actor: by, name: secret, target: target.name, login, why: 'an unfinished rotation left a value the target does not accept; the previous one is back' }));
      current.fill(0);
      return previous;
    }
    // Neither logs in (the target is down?): keep both and let this rotation fail as it will.
    previous.fill(0);
    return current;
  }

  /** Every vaulted secret with what uses it, when it was rotated, when it is due and the last error. */
  async status(): Promise<SecretStatus[]> {
    return (await this.deps.vault.infos()).map((info) => {
      const uses = this.usesOf(info.name);
      const every = uses.length === 1 ? uses[0]!.target.rotation?.everyMs : undefined;
      const base = Math.max(Date.parse(info.updatedAt), info.rotatedAt ? Date.parse(info.rotatedAt) : 0);
      return {
        name: info.name, usedBy: uses.map((u) => `${u.login}@${u.target.name}`), updatedAt: info.updatedAt,
        ...(info.rotatedAt ? { lastRotated: info.rotatedAt } : {}),
        ...(every ? { nextDue: new Date(base + every).toISOString() } : {}),
        ...(info.lastError && info.lastErrorAt && Date.parse(info.lastErrorAt) >= base ? { lastError: info.lastError, lastErrorAt: info.lastErrorAt } : {}),
      };
    });
  }

  /** The secrets the schedule should rotate now (due, and not failed within the retry pause). */
  async due(): Promise<string[]> {
    const now = this.now();
    const out: string[] = [];
    for (const s of await this.status()) {
      if (!s.nextDue || Date.parse(s.nextDue) > now) continue;
      const every = Date.parse(s.nextDue) - Math.max(Date.parse(s.updatedAt), s.lastRotated ? Date.parse(s.lastRotated) : 0);
      if (s.lastErrorAt && now - Date.parse(s.lastErrorAt) < Math.min(RETRY_MS, every)) continue;
      out.push(s.name);
    }
    return out;
  }

  /**
   * `pam serve`: checks the schedule every `tickMs`, and rotates a login's secret after each of
   * its sessions ends where the target says `after_session: true`. Returns the stop function.
   */
  startSchedule(sessions: SessionRegistry, opts: { tickMs?: number } = {}): () => void {
    const tick = async () => {
      for (const name of await this.due().catch(() => [])) await this.rotate(name, 'schedule', 'rotation.every');
    };
    const timer = setInterval(() => void tick(), opts.tickMs ?? 60_000);
    timer.unref();
    const onEnd = (s: LiveSession) => {
      const target = this.deps.targets().find((t) => t.name === s.target);
      const secret = target?.logins[s.login]?.secret;
      if (target?.rotation?.afterSession && secret) void this.rotate(secret, 'schedule', `after session ${s.id} of ${s.user}`);
    };
    sessions.events.on('end', onEnd);
    void tick();
    return () => {
      clearInterval(timer);
      sessions.events.off('end', onEnd);
    };
  }
}
