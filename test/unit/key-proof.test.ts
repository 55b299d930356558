import { generateEd25519 } from '../../proxy/ssh/ed25519-keygen.js';
import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import fc from 'fast-check';
import { decodeSignature, ecdsaP1363ToSsh, ecdsaSshToP1363, encodeSignature, KeyProofError, proofPreimage, verifyProof } from '../../access/key-proof.js';
import { signChallenge } from '../../cli/key-signer.js';

const KEYS: Array<[string, string, object]> = [
  ['ed25519', 'ed25519', {}],
  ['ecdsa-256', 'ecdsa', { bits: 256 }],
  ['ecdsa-384', 'ecdsa', { bits: 384 }],
  ['ecdsa-521', 'ecdsa', { bits: 521 }],
  ['rsa-2048', 'rsa', { bits: 2048 }],
];

async function signWith(pair: { public: string; private: string }, challenge: string): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'pam-kp-'));
  try {
    await writeFile(join(dir, 'k'), pair.private, { mode: 0o600 });
    await writeFile(join(dir, 'k.pub'), pair.public);
    return await signChallenge(join(dir, 'k.pub'), pair.public, challenge, {});
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('key proof (SSHSIG preimage, SSH signature form)', () => {
  for (const [name, type, opts] of KEYS) {
    it(`verifies a ${name} signature and nothing else`, async () => {
      const pair = ssh2.utils.generateKeyPairSync(type as 'ed25519', opts as never);
      const pub = ssh2.utils.parseKey(pair.public) as ssh2.ParsedKey;
      const sig = await signWith(pair, 'challenge-1');
      expect(verifyProof(pub.type, pub.getPublicPEM(), 'challenge-1', sig)).toBe(true);
      expect(verifyProof(pub.type, pub.getPublicPEM(), 'challenge-2', sig)).toBe(false);
      const flipped = Buffer.from(sig);
      flipped[flipped.length - 3]! ^= 1;
      expect(verifyProof(pub.type, pub.getPublicPEM(), 'challenge-1', flipped)).toBe(false);
      const other = ssh2.utils.parseKey(ssh2.utils.generateKeyPairSync(type as 'ed25519', opts as never).public) as ssh2.ParsedKey;
      expect(verifyProof(other.type, other.getPublicPEM(), 'challenge-1', sig)).toBe(false);
    });
  }

  it('is domain-separated: a plain signature over the challenge is not a proof', () => {
    const pair = generateEd25519();
    const priv = ssh2.utils.parseKey(pair.private) as ssh2.ParsedKey;
    const pub = ssh2.utils.parseKey(pair.public) as ssh2.ParsedKey;
    const plain = priv.sign(Buffer.from('c')) as Buffer;
    expect(verifyProof(pub.type, pub.getPublicPEM(), 'c', encodeSignature('ssh-ed25519', plain))).toBe(false);
    expect(proofPreimage('c').subarray(0, 6).toString()).toBe('SSHSIG');
  });

  it('round-trips ECDSA between P1363 and SSH mpints', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (raw) => {
      expect(ecdsaSshToP1363(ecdsaP1363ToSsh(Buffer.from(raw)), 32)).toEqual(Buffer.from(raw));
    }));
  });

  it('never crashes on random signature bytes: false or a KeyProofError', () => {
    const pub = ssh2.utils.parseKey(ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 }).public) as ssh2.ParsedKey;
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        expect(verifyProof(pub.type, pub.getPublicPEM(), 'c', Buffer.from(bytes))).toBe(false);
      } catch (e) {
        expect(e).toBeInstanceOf(KeyProofError);
      }
      try {
        decodeSignature(Buffer.from(bytes));
      } catch (e) {
        expect(e).toBeInstanceOf(KeyProofError);
      }
    }));
  });
});

describe('generateEd25519', () => {
  it('every pair it makes parses back (ssh2 alone writes an unreadable one now and then)', () => {
    let unreadableFromSsh2 = 0;
    for (let i = 0; i < 1500; i++) {
      if (ssh2.utils.parseKey(ssh2.utils.generateKeyPairSync('ed25519').private) instanceof Error) unreadableFromSsh2++;
      const pair = generateEd25519('t');
      expect(ssh2.utils.parseKey(pair.private)).not.toBeInstanceOf(Error);
    }
    // The fault this guards against is real on this ssh2: say so when it shows (not asserted: it is random).
    if (unreadableFromSsh2) console.log(`ssh2 made ${unreadableFromSsh2} unreadable keys in 1500`);
  });
});
