import { sign, verify } from 'node:crypto';
import type { Keyring, SigningKey } from './signing-key.js';

/**
 * A statement by the proxy: "the log named `origin` had `size` entries with Merkle root `root`
 * at `time`". Signed with Ed25519 over a fixed text body, so nothing depends on JSON key order.
 */
export interface Checkpoint {
  origin: string;
  size: number;
  /** Hex SHA-256 Merkle root (RFC 9162 MTH) of the first `size` entries. */
  root: string;
  time: string;
}

export interface SignedCheckpoint extends Checkpoint {
  /** Which key signed (see keyIdOf); old keys stay listed so old checkpoints keep verifying. */
  key_id: string;
  /** Base64 Ed25519 signature over checkpointBody(). */
  signature: string;
}

const FORMAT = 'pam-evidence-checkpoint/v1';

export function checkpointBody(c: Checkpoint): string {
  return `${FORMAT}\n${c.origin}\n${c.size}\n${c.root}\n${c.time}\n`;
}

export function signCheckpoint(c: Checkpoint, key: SigningKey): SignedCheckpoint {
  const signature = sign(null, Buffer.from(checkpointBody(c)), key.privateKey).toString('base64');
  return { origin: c.origin, size: c.size, root: c.root, time: c.time, key_id: key.keyId, signature };
}

/** Why a checkpoint is not to be believed, or undefined when its signature holds. */
export function checkpointProblem(c: SignedCheckpoint, keys: Keyring): string | undefined {
  const key = keys.get(c.key_id);
  if (!key) return `signed by key ${c.key_id}, which is not among the trusted public keys`;
  const ok = verify(null, Buffer.from(checkpointBody(c)), key, Buffer.from(c.signature, 'base64'));
  return ok ? undefined : 'its signature does not verify';
}

/** Validates the shape of a checkpoint read from a file; throws on anything else. */
export function parseCheckpoint(v: unknown): SignedCheckpoint {
  const o = v as Record<string, unknown>;
  const ok = typeof o === 'object' && o !== null
    && typeof o.origin === 'string' && !o.origin.includes('\n')
    && Number.isSafeInteger(o.size) && (o.size as number) >= 0
    && typeof o.root === 'string' && /^[0-9a-f]{64}$/.test(o.root)
    && typeof o.time === 'string' && !o.time.includes('\n')
    && typeof o.key_id === 'string' && /^[0-9a-f]{32}$/.test(o.key_id)
    && typeof o.signature === 'string' && /^[A-Za-z0-9+/]{86}==$/.test(o.signature);
  if (!ok) throw new Error('not a signed checkpoint');
  return { origin: o.origin as string, size: o.size as number, root: o.root as string, time: o.time as string, key_id: o.key_id as string, signature: o.signature as string };
}
