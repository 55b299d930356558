/**
 * Outstanding key-binding challenges, capped per subject and per source (issue 12). Each
 * challenge is a store entry that lives until it is answered or expires; without a cap one
 * token (or one address cycling tokens) could create them without end and fill the store.
 *
 * Per cap key (`sub:ISSUER|SUBJECT`, `src:ADDRESS`) one store entry lists the open challenges
 * with their expiry; a take drops the expired ones, refuses when the list is full and otherwise
 * adds one, in one atomic update (so concurrent takes on several nodes cannot overshoot). An
 * answered challenge gives its slot back; an unanswered one frees it when it expires. The entry
 * itself expires with its last challenge.
 */
import type { Store } from './store.types.js';

const NS = 'ssh-key-challenge-quota';

interface Slots { open: { id: string; expiresAt: number }[] }

/** One cap: `key` in the store, at most `max` open challenges, `what` names it in the refusal. */
export interface QuotaKey { key: string; max: number; what: string }

export class QuotaFull extends Error {
  constructor(public readonly what: string, public readonly max: number, public readonly retryAfterMs: number) {
    super(`${what} already has ${max} open key-binding challenges; answer one or wait until one expires`);
    this.name = 'QuotaFull';
  }
}

export class ChallengeQuota {
  /** `ttlMs`: how long a challenge lives; a slot list written now holds none that outlives it. */
  constructor(private readonly store: Store, private readonly ttlMs: number, private readonly now: () => number = Date.now) {}

  /** Takes a slot for challenge `id` under every key, or none: throws QuotaFull for the first that is full. */
  async take(keys: QuotaKey[], id: string, expiresAt: number): Promise<void> {
    const taken: string[] = [];
    try {
      for (const k of keys) {
        await this.store.update<Slots>(NS, k.key, (current) => {
          const now = this.now();
          const open = (current?.open ?? []).filter((s) => s.expiresAt > now);
          if (open.length >= k.max) throw new QuotaFull(k.what, k.max, Math.max(1000, Math.min(...open.map((s) => s.expiresAt)) - now));
          return { open: [...open, { id, expiresAt }] };
        }, { ttlMs: this.ttlMs });
        taken.push(k.key);
      }
    } catch (err) {
      await this.release(taken, id).catch(() => undefined);
      throw err;
    }
  }

  /** Gives challenge `id`'s slot back under each key (it was answered). */
  async release(keys: string[], id: string): Promise<void> {
    for (const key of keys) {
      await this.store.update<Slots>(NS, key, (current) => {
        const now = this.now();
        const open = (current?.open ?? []).filter((s) => s.id !== id && s.expiresAt > now);
        return open.length ? { open } : undefined;
      }, { ttlMs: this.ttlMs });
    }
  }
}
