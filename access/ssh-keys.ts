import { createHash, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import type { Identity } from './identity.types.js';
import type { Store } from './store.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import { KeyProofError, signatureAlgorithmFor, verifyProof } from './key-proof.js';
import { auditBy } from '../recorder/audit-events.js';
import { ChallengeQuota, QuotaFull, type QuotaKey } from './challenge-quota.js';
import type { RejectionAudit } from './rejection-audit.js';

const NS = 'ssh-keys';
const CHALLENGES = 'ssh-key-challenges';
/** A challenge must be answered within this time, once. */
const CHALLENGE_TTL_MS = 2 * 60_000;

export interface KeyBinding {
  fingerprint: string;
  type: string;
  identity: Identity;
  expiresAt: number;
}

interface PendingChallenge { subject: string; issuer: string; fingerprint: string; expiresAt: number; quota?: string[] }

/** Open (unanswered, unexpired) challenges one subject may hold at once. */
export const MAX_CHALLENGES_PER_SUBJECT = 5;
/** Open challenges one client address may hold at once, whoever asks. */
export const MAX_CHALLENGES_PER_SOURCE = 20;

/** What `bind` needs besides the key: the challenge it was given and the signature over it. */
export interface KeyProof { challenge: string; signature: Buffer }

/** A refused binding: `code` maps to the API status (bad-key, bad-proof: 400; taken: 409; busy: 429). */
export class KeyBindingError extends Error {
  constructor(public readonly code: 'bad-key' | 'bad-proof' | 'taken' | 'expired' | 'busy', message: string, public readonly retryAfterMs?: number) {
    super(message);
    this.name = 'KeyBindingError';
  }
}

/** OpenSSH-style fingerprint of a public key blob: SHA256:base64-without-padding. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

function parsePublic(publicKeyLine: string) {
  const parsed = ssh2.utils.parseKey(publicKeyLine);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) throw new KeyBindingError('bad-key', 'not an OpenSSH public key line');
  try {
    signatureAlgorithmFor(parsed.type);
  } catch (e) {
    throw new KeyBindingError('bad-key', (e as Error).message);
  }
  return parsed;
}

const sameSubject = (a: Pick<Identity, 'subject' | 'issuer'>, b: Pick<Identity, 'subject' | 'issuer'>) => a.subject === b.subject && a.issuer === b.issuer;

/**
 * `pam login --key`: binds a public key to the token's identity until the token expires, so
 * OpenSSH clients can log in with the key instead of pasting a (possibly over-long) token.
 *
 * Binding takes proof of possession: `challenge` hands out a single-use nonce tied to the
 * caller and the key, `bind` checks the key's signature over it (access/key-proof.ts). A key
 * bound to someone else stays theirs until that binding expires: another subject's attempt is
 * refused and audited, whatever proof it brings.
 */
export class SshKeyBindings {
  private readonly quota: ChallengeQuota;

  /** `rejections`: refusals for too many open challenges are audited rate-limited per source (counted). */
  constructor(private readonly store: Store, private readonly audit: AuditLog, private readonly now: () => number = Date.now, private readonly rejections?: RejectionAudit) {
    this.quota = new ChallengeQuota(store, CHALLENGE_TTL_MS, now);
  }

  /**
   * A single-use challenge for binding `publicKeyLine`, valid CHALLENGE_TTL_MS. At most
   * MAX_CHALLENGES_PER_SUBJECT open per subject and MAX_CHALLENGES_PER_SOURCE per client
   * address (`source`); past that a KeyBindingError 'busy', audited.
   */
  async challenge(identity: Identity, publicKeyLine: string, source = 'unknown'): Promise<{ challenge: string; expiresAt: number }> {
    const fp = fingerprint(parsePublic(publicKeyLine).getPublicSSH());
    const challenge = `pamkc_${randomBytes(32).toString('base64url')}`;
    const expiresAt = this.now() + CHALLENGE_TTL_MS;
    const keys: QuotaKey[] = [
      { key: `sub:${identity.issuer}|${identity.subject}`, max: MAX_CHALLENGES_PER_SUBJECT, what: 'your identity' },
      { key: `src:${source}`, max: MAX_CHALLENGES_PER_SOURCE, what: 'your address' },
    ];
    try {
      await this.quota.take(keys, challenge, expiresAt);
    } catch (e) {
      if (!(e instanceof QuotaFull)) throw e;
      const event = { ...auditBy(identity, 'ssh-key.refused', { fingerprint: fp, why: `too many open challenges (${e.what}: ${e.max})` }), via: 'ssh-key-challenge', reason: 'too many open challenges', client: source };
      await (this.rejections ? this.rejections.rejected(event, source) : this.audit.append(event));
      throw new KeyBindingError('busy', e.message, e.retryAfterMs);
    }
    await this.store.set<PendingChallenge>(CHALLENGES, challenge, { subject: identity.subject, issuer: identity.issuer, fingerprint: fp, expiresAt, quota: keys.map((k) => k.key) }, { ttlMs: CHALLENGE_TTL_MS });
    return { challenge, expiresAt };
  }

  async bind(identity: Identity, publicKeyLine: string, proof: KeyProof): Promise<KeyBinding> {
    const parsed = parsePublic(publicKeyLine);
    const fp = fingerprint(parsed.getPublicSSH());
    const ttlMs = identity.expiresAt - this.now();
    if (ttlMs <= 0) throw new KeyBindingError('expired', 'token already expired');
    const pending = await this.consume(proof.challenge);
    let valid = false;
    if (pending && pending.expiresAt > this.now() && sameSubject(pending, identity) && pending.fingerprint === fp) {
      try {
        valid = verifyProof(parsed.type, parsed.getPublicPEM(), proof.challenge, proof.signature);
      } catch (e) {
        if (!(e instanceof KeyProofError)) throw e;
      }
    }
    if (!valid) {
      await this.audit.append(auditBy(identity, 'ssh-key.refused', { fingerprint: fp, why: pending ? 'bad proof of possession' : 'unknown or used challenge' }));
      throw new KeyBindingError('bad-proof', 'the key signature does not prove possession of this key for this challenge; run `pam login --key` again');
    }
    const binding: KeyBinding = { fingerprint: fp, type: parsed.type, identity, expiresAt: identity.expiresAt };
    // A throw inside update writes nothing: the owner's binding (and its expiry) stays as it is.
    let owner: Identity | undefined;
    try {
      await this.store.update<KeyBinding>(NS, fp, (current) => {
        if (current && current.expiresAt > this.now() && !sameSubject(current.identity, identity)) {
          owner = current.identity;
          throw new KeyBindingError('taken', 'taken');
        }
        return binding;
      }, { ttlMs });
    } catch (e) {
      if (!(e instanceof KeyBindingError)) throw e;
    }
    if (owner) {
      await this.audit.append(auditBy(identity, 'ssh-key.takeover-refused', { fingerprint: fp, owner: owner.user, owner_sub: owner.subject }));
      throw new KeyBindingError('taken', `key ${fp} is bound to another user; use a key of your own`);
    }
    await this.audit.append(auditBy(identity, 'ssh-key.bind', { fingerprint: fp, expires: new Date(binding.expiresAt).toISOString() }));
    return binding;
  }

  /** The identity bound to this key blob, if the binding has not expired. */
  /** Deletes every binding whose identity `match` accepts (offboarding); returns their fingerprints. */
  async removeWhere(match: (identity: Identity) => boolean): Promise<string[]> {
    const gone: string[] = [];
    for (const b of await this.store.list<KeyBinding>(NS)) {
      if (match(b.identity) && (await this.store.delete(NS, b.fingerprint))) gone.push(b.fingerprint);
    }
    return gone;
  }

  async lookup(blob: Buffer): Promise<Identity | undefined> {
    const b = await this.store.get<KeyBinding>(NS, fingerprint(blob));
    return b && b.expiresAt > this.now() ? b.identity : undefined;
  }

  /** Reads and deletes a challenge in one step, so each is answered at most once. */
  private async consume(challenge: string): Promise<PendingChallenge | undefined> {
    if (typeof challenge !== 'string' || !/^pamkc_[A-Za-z0-9_-]{43}$/.test(challenge)) return undefined;
    let seen: PendingChallenge | undefined;
    await this.store.update<PendingChallenge>(CHALLENGES, challenge, (current) => {
      seen = current;
      return undefined;
    });
    // Answered (rightly or not): its slots are free for the next challenge.
    if (seen?.quota) await this.quota.release(seen.quota, challenge);
    return seen;
  }
}
