import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** A refused signing key or public key file: the message says which file and why. */
export class EvidenceKeyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EvidenceKeyError';
  }
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Names the key in every checkpoint, so verifiers pick the right one after a rotation. */
  keyId: string;
  publicPem: string;
}

/** Public keys by key id: the current one and any older ones kept for old checkpoints. */
export type Keyring = Map<string, KeyObject>;

/** First 16 bytes of SHA-256 over the SubjectPublicKeyInfo DER, hex. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 32);
}

export function publicPemOf(publicKey: KeyObject): string {
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

function assertEd25519(key: KeyObject, file: string): void {
  if (key.asymmetricKeyType !== 'ed25519') throw new EvidenceKeyError(`${file}: an ${key.asymmetricKeyType ?? 'unknown'} key; the evidence key must be Ed25519`);
}

/**
 * Reads the Ed25519 signing key (PKCS#8 PEM), creating it with mode 0600 when the file is missing.
 * A file readable or writable by group or others is refused: whoever can read it can forge
 * checkpoints, so a wide mode is treated as a leaked key, never silently fixed.
 */
export async function loadSigningKey(file: string, opts: { create?: boolean } = {}): Promise<SigningKey> {
  let pem: string;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new EvidenceKeyError(`${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new EvidenceKeyError(`${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, wider than 0600: whoever reads it can forge evidence (chmod 600 ${file}, and rotate the key if others could read it)`);
    }
    pem = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof EvidenceKeyError) throw err;
      throw new EvidenceKeyError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (!opts.create) throw new EvidenceKeyError(`${file} does not exist (pam serve creates it on first start)`);
    pem = await createKeyFile(file);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new EvidenceKeyError(`${file} is not a PKCS#8 PEM private key`, { cause: err });
  }
  assertEd25519(privateKey, file);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), publicPem: publicPemOf(publicKey) };
}

async function createKeyFile(file: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    // 'wx': another process creating it at the same moment wins, and we read theirs.
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.writeFile(pem);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return pem;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFile(file, 'utf8');
    throw new EvidenceKeyError(`cannot create ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Every Ed25519 public key in a PEM text (one or more "PUBLIC KEY" blocks). */
export function parsePublicKeys(text: string, file = 'public key file'): Keyring {
  const ring: Keyring = new Map();
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? [];
  for (const block of blocks) {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: block, format: 'pem' });
    } catch (err) {
      throw new EvidenceKeyError(`${file}: a PUBLIC KEY block does not parse`, { cause: err });
    }
    assertEd25519(key, file);
    ring.set(keyIdOf(key), key);
  }
  if (ring.size === 0) throw new EvidenceKeyError(`${file} holds no PEM public key`);
  return ring;
}

export async function readPublicKeys(files: string[]): Promise<Keyring> {
  const ring: Keyring = new Map();
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      throw new EvidenceKeyError(`cannot read ${f}: ${(err as Error).message}`, { cause: err });
    }
    for (const [id, k] of parsePublicKeys(text, f)) ring.set(id, k);
  }
  return ring;
}
