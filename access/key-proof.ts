/**
 * Proof of possession for `pam login --key`: the caller signs a server challenge with the
 * private key, and the server verifies it against the public key before binding it.
 *
 * What is signed is an SSHSIG preimage (OpenSSH PROTOCOL.sshsig §"Signed Data"), so the
 * signature is domain-separated: it can never double as an SSH user-auth signature (those
 * start with a session id) nor as a signature for another SSHSIG namespace.
 *
 *   byte[6]  "SSHSIG"
 *   string   namespace            "pam-key-binding@pam-proxy"
 *   string   reserved             ""
 *   string   hash_algorithm       "sha512"
 *   string   H(message)           SHA-512 of the challenge text
 *
 * A signature travels as the SSH wire form (RFC 4253 §6.6): string algorithm, string blob.
 * ECDSA blobs are mpint r, mpint s (RFC 5656 §3.1.2). Pure functions over buffers; every read
 * is bounds-checked and throws KeyProofError.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';

export const PROOF_NAMESPACE = 'pam-key-binding@pam-proxy';
const MAGIC = Buffer.from('SSHSIG');
/** Longest signature blob we look at (RSA 16384-bit is 2 KiB); anything larger is garbage. */
const MAX_SIGNATURE_BYTES = 4096;

export class KeyProofError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyProofError';
  }
}

const sshString = (b: Buffer): Buffer => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};

/** Reads SSH `string`s from a buffer; throws on any length that runs past the end. */
class SshReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  string(what: string): Buffer {
    if (this.pos + 4 > this.buf.length) throw new KeyProofError(`signature: truncated ${what}`);
    const len = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    if (len > this.buf.length - this.pos) throw new KeyProofError(`signature: ${what} runs past the end`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new KeyProofError('signature: trailing bytes');
  }
}

/** The bytes a key signs to prove possession for `challenge`. */
export function proofPreimage(challenge: string): Buffer {
  const digest = createHash('sha512').update(challenge, 'utf8').digest();
  return Buffer.concat([MAGIC, sshString(Buffer.from(PROOF_NAMESPACE)), sshString(Buffer.alloc(0)), sshString(Buffer.from('sha512')), sshString(digest)]);
}

/** SSH wire form of a signature: string algorithm, string blob. */
export function encodeSignature(algorithm: string, blob: Buffer): Buffer {
  return Buffer.concat([sshString(Buffer.from(algorithm)), sshString(blob)]);
}

export function decodeSignature(wire: Buffer): { algorithm: string; blob: Buffer } {
  if (wire.length > MAX_SIGNATURE_BYTES) throw new KeyProofError('signature: too large');
  const r = new SshReader(wire);
  const algorithm = r.string('algorithm').toString('latin1');
  const blob = r.string('signature blob');
  r.end();
  return { algorithm, blob };
}

interface Curve { hash: string; size: number }
const ECDSA: Record<string, Curve> = {
  'ecdsa-sha2-nistp256': { hash: 'sha256', size: 32 },
  'ecdsa-sha2-nistp384': { hash: 'sha384', size: 48 },
  'ecdsa-sha2-nistp521': { hash: 'sha512', size: 66 },
};

/** mpint r, mpint s → r||s at fixed width (IEEE P1363), the form node's verify takes. */
export function ecdsaSshToP1363(blob: Buffer, size: number): Buffer {
  const r = new SshReader(blob);
  const parts = [r.string('ecdsa r'), r.string('ecdsa s')];
  r.end();
  const out = Buffer.alloc(size * 2);
  parts.forEach((mp, i) => {
    let v = mp;
    while (v.length > 0 && v[0] === 0) v = v.subarray(1); // mpint sign padding
    if (v.length > size) throw new KeyProofError('signature: ecdsa value out of range');
    v.copy(out, i * size + (size - v.length));
  });
  return out;
}

/** r||s (IEEE P1363) → mpint r, mpint s. Used by the CLI when it signs with a key file. */
export function ecdsaP1363ToSsh(sig: Buffer): Buffer {
  const half = sig.length / 2;
  const mpint = (v: Buffer) => {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    const t = v.subarray(i);
    return sshString(t[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), t]) : t);
  };
  return Buffer.concat([mpint(sig.subarray(0, half)), mpint(sig.subarray(half))]);
}

/** The signature algorithm a key type signs with here (RSA: SHA-512; SHA-1 `ssh-rsa` is refused). */
export function signatureAlgorithmFor(keyType: string): { algorithm: string; hash: string | null } {
  if (keyType === 'ssh-ed25519') return { algorithm: 'ssh-ed25519', hash: null };
  if (keyType === 'ssh-rsa') return { algorithm: 'rsa-sha2-512', hash: 'sha512' };
  const curve = ECDSA[keyType];
  if (curve) return { algorithm: keyType, hash: curve.hash };
  throw new KeyProofError(`keys of type ${keyType} cannot be bound (use ed25519, ECDSA or RSA)`);
}

/**
 * True when `wire` is a valid signature of proofPreimage(challenge) by the key of `keyType`
 * whose public key is `publicPem`. Throws KeyProofError for malformed input.
 */
export function verifyProof(keyType: string, publicPem: string, challenge: string, wire: Buffer): boolean {
  const { algorithm, blob } = decodeSignature(wire);
  const data = proofPreimage(challenge);
  let key: KeyObject;
  try {
    key = createPublicKey(publicPem);
  } catch {
    throw new KeyProofError('not a usable public key');
  }
  if (keyType === 'ssh-ed25519') {
    if (algorithm !== 'ssh-ed25519' || blob.length !== 64) return false;
    return cryptoVerify(null, data, key, blob);
  }
  if (keyType === 'ssh-rsa') {
    const hash = algorithm === 'rsa-sha2-512' ? 'sha512' : algorithm === 'rsa-sha2-256' ? 'sha256' : undefined;
    if (!hash) return false;
    return cryptoVerify(hash, data, key, blob);
  }
  const curve = ECDSA[keyType];
  if (!curve) throw new KeyProofError(`keys of type ${keyType} cannot be bound (use ed25519, ECDSA or RSA)`);
  if (algorithm !== keyType) return false;
  return cryptoVerify(curve.hash, data, { key, dsaEncoding: 'ieee-p1363' }, ecdsaSshToP1363(blob, curve.size));
}
