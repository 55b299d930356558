import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { Identity } from './identity.types.js';
import type { Store } from './store.types.js';
import type { AuditLog } from '../recorder/audit.types.js';

const NS = 'ssh-keys';

export interface KeyBinding {
  fingerprint: string;
  type: string;
  identity: Identity;
  expiresAt: number;
}

/** OpenSSH-style fingerprint of a public key blob: SHA256:base64-without-padding. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/**
 * `pam login --key`: binds a public key to the token's identity until the token expires, so
 * OpenSSH clients can log in with the key instead of pasting a (possibly over-long) token.
 */
export class SshKeyBindings {
  constructor(private readonly store: Store, private readonly audit: AuditLog, private readonly now: () => number = Date.now) {}

  async bind(identity: Identity, publicKeyLine: string): Promise<KeyBinding> {
    const parsed = ssh2.utils.parseKey(publicKeyLine);
    if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) throw new Error('not an OpenSSH public key line');
    const blob = parsed.getPublicSSH();
    const ttlMs = identity.expiresAt - this.now();
    if (ttlMs <= 0) throw new Error('token already expired');
    const binding: KeyBinding = { fingerprint: fingerprint(blob), type: parsed.type, identity, expiresAt: identity.expiresAt };
    await this.store.set(NS, binding.fingerprint, binding, { ttlMs });
    await this.audit.append({ type: 'ssh-key.bind', actor: identity.user, fingerprint: binding.fingerprint, expires: new Date(binding.expiresAt).toISOString() });
    return binding;
  }

  /** The identity bound to this key blob, if the binding has not expired. */
  async lookup(blob: Buffer): Promise<Identity | undefined> {
    const b = await this.store.get<KeyBinding>(NS, fingerprint(blob));
    return b && b.expiresAt > this.now() ? b.identity : undefined;
  }
}
