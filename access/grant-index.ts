import type { Store } from './store.types.js';
import type { Grant } from './access.types.js';

const BY_SUBJECT = 'grant-subjects';

interface SubjectEntry {
  /** Grant ids of this subject with their expiry (ms since epoch). */
  grants: { id: string; expiresAt: number }[];
}

/**
 * Grant ids per subject, kept beside the grants in the same store (every node sees it), so a
 * session open reads its own few grants instead of listing every grant there is.
 *
 * The index only ever finds candidates: each grant is read and checked as before (subject,
 * target, login, start and expiry), so a revoked or expired id in it grants nothing. An entry
 * expires with the last of its grants. A grant it does not know of (written by an older
 * version, or before its index entry) is still found, because a look-up that finds nothing
 * usable falls back to the full scan (AccessService.authorize).
 */
export class GrantIndex {
  constructor(private readonly store: Store, private readonly now: () => number = Date.now) {}

  /** Records a new grant; call after the grant itself is stored. */
  async add(grant: Grant): Promise<void> {
    if (!indexable(grant.subject)) return;
    const now = this.now();
    // The entry lives as long as its longest grant (a racing add may shorten it: the fallback scan covers that).
    const before = await this.store.get<SubjectEntry>(BY_SUBJECT, grant.subject);
    const until = Math.max(grant.expiresAt, ...(before?.grants ?? []).map((g) => g.expiresAt));
    await this.store.update<SubjectEntry>(BY_SUBJECT, grant.subject, (cur) => ({
      grants: [...(cur?.grants ?? []).filter((g) => g.expiresAt > now && g.id !== grant.id), { id: grant.id, expiresAt: grant.expiresAt }],
    }), { ttlMs: Math.max(1, until - now) });
  }

  /** The stored grants of `subject` that have not expired (revoked ones are gone from the store). */
  async of(subject: string): Promise<Grant[]> {
    if (!indexable(subject)) return [];
    const entry = await this.store.get<SubjectEntry>(BY_SUBJECT, subject);
    if (!entry) return [];
    const now = this.now();
    const live = entry.grants.filter((g) => g.expiresAt > now);
    const found = await Promise.all(live.map((g) => this.store.get<Grant>('grants', g.id)));
    return found.filter((g): g is Grant => g !== undefined && g.subject === subject);
  }
}

/** Store keys are at most 1024 characters; a longer subject is found by the scan alone. */
const indexable = (subject: string) => subject.length > 0 && subject.length <= 1024;
