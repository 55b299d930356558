import type { Target } from '../config/config.types.js';

/** One rotation at a target, as the protocol rotator sees it. */
export interface RotationJob {
  target: Target;
  /** The login whose credential changes. */
  login: string;
  /** The vault name of that credential. */
  secretName: string;
  /** Its current value (wiped by the caller afterwards). */
  current: Buffer;
  /** `rotation.login`: another login that makes the change, with its credential. */
  via?: { login: string; secret: Buffer };
  /**
   * Stores the new value in the vault. The rotator calls it once the new credential works (or,
   * for Postgres, just before the password change commits), so sessions opening meanwhile
   * always find a credential the target accepts. Calling it again with the old value undoes it.
   */
  commit(next: Buffer): Promise<void>;
}

/**
 * Changes one credential at its target: Postgres (proxy/postgres/rotator.ts), SSH
 * (proxy/ssh/rotator.ts). On failure it throws with a reason safe to show and audit, and
 * leaves the old credential valid at the target and in the vault.
 */
export interface CredentialRotator {
  rotate(job: RotationJob): Promise<void>;
  /** Whether `credential` logs in as `login`: decides which value to keep after a crashed rotation. */
  check?(target: Target, login: string, credential: Buffer): Promise<boolean>;
}
