import { randomInt } from 'node:crypto';

/**
 * The proxy hands each client its own BackendKeyData and keeps the mapping to the upstream
 * key, so a CancelRequest never reveals or needs the target's pid and secret, and a guessed
 * key cancels nothing (the secret is compared exactly).
 */
export interface CancelTarget {
  secret: number;
  cancel(): void;
}

export class CancelKeys {
  private readonly keys = new Map<number, CancelTarget>();

  /** Allocates a fresh (pid, secret) for `cancel`; returns it with a release function. */
  add(cancel: () => void): { processId: number; secretKey: number; release: () => void } {
    let processId: number;
    do processId = randomInt(1, 2 ** 31 - 1);
    while (this.keys.has(processId));
    const secretKey = randomInt(-(2 ** 31), 2 ** 31 - 1);
    this.keys.set(processId, { secret: secretKey, cancel });
    return { processId, secretKey, release: () => this.keys.delete(processId) };
  }

  /** Runs the cancel if the key matches; returns whether it did. */
  cancel(processId: number, secretKey: number): boolean {
    const t = this.keys.get(processId);
    if (!t || t.secret !== secretKey) return false;
    t.cancel();
    return true;
  }
}
