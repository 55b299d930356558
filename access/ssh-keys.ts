import { createHash, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import type { Identity } from './identity.types.js';
import type { Store } from './store.types.js';
import type { AuditLog } from '../recorder/audit.types.js';
import { KeyProofError, signatureAlgorithmFor, verifyProof } from './key-proof.js';
import { auditBy } from '../recorder/audit-events.js';

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

interface PendingChallenge { subject: string; issuer: string; fingerprint: string; expiresAt: number }

/** What `bind` needs besides the key: the challenge it was given and the signature over it. */
export interface KeyProof { challenge: string; signature: Buffer }

/** A refused binding: `code` maps to the API status (bad-key, bad-proof: 400; taken: 409). */
export class KeyBindingError extends Error {
  constructor(public readonly code: 'bad-key' | 'bad-proof' | 'taken' | 'expired', message: string) {
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
  constructor(private readonly store: Store, private readonly audit: AuditLog, private readonly now: () => number = Date.now) {}

  async challenge(identity: Identity, publicKeyLine: string): Promise<{ challenge: string; expiresAt: number }> {
    const fp = fingerprint(parsePublic(publicKeyLine).getPublicSSH());
    const challenge = `pamkc_${randomBytes(32).toString('base64url')}`;
    const expiresAt = this.now() + CHALLENGE_TTL_MS;
    await this.store.set<PendingChallenge>(CHALLENGES, challenge, { subject: identity.subject, issuer: identity.issuer, fingerprint: fp, expiresAt }, { ttlMs: CHALLENGE_TTL_MS });
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
    return seen;
  }
}
