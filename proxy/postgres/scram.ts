import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * SCRAM-SHA-256 client side (RFC 5802, RFC 7677) as PostgreSQL speaks it, and MD5 password
 * hashing. https://www.postgresql.org/docs/current/sasl-authentication.html
 *
 * The PBKDF2 step dominates a login (4096 iterations by default); its results are cached per
 * (password, salt, iterations), so repeated sessions to the same login cost two HMACs.
 */

const pbkdf2Async = promisify(pbkdf2);

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

interface Keys { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer }
const cache = new Map<string, Keys>();
const CACHE_MAX = 1024;

const hmac = (key: Buffer, data: string | Buffer) => createHmac('sha256', key).update(data).digest();

async function keysFor(password: Buffer, salt: Buffer, iterations: number): Promise<Keys> {
  // The cache key is a digest: no password sits in the map in the clear.
  const k = createHash('sha256').update(password).update('\0').update(salt).update(`\0${iterations}`).digest('base64');
  const hit = cache.get(k);
  if (hit) return hit;
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  const keys = { clientKey, storedKey: createHash('sha256').update(clientKey).digest(), serverKey: hmac(salted, 'Server Key') };
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(k, keys);
  return keys;
}

/** One SCRAM exchange: `first()`, then `final(serverFirst)`, then `verify(serverFinal)`. */
export class ScramClient {
  private readonly nonce = randomBytes(18).toString('base64');
  private readonly firstBare = `n=,r=${this.nonce}`;
  private serverSignature: Buffer | undefined;

  constructor(private readonly password: Buffer) {}

  /** client-first-message (gs2 header "n,," : no channel binding). */
  first(): Buffer {
    return Buffer.from(`n,,${this.firstBare}`);
  }

  /** client-final-message for the server-first-message `r=…,s=…,i=…`. */
  async final(serverFirst: string): Promise<Buffer> {
    const attrs = new Map<string, string>();
    for (const part of serverFirst.split(',')) {
      const eq = part.indexOf('=');
      if (eq === 1) attrs.set(part[0]!, part.slice(2));
    }
    const r = attrs.get('r');
    const s = attrs.get('s');
    const i = Number(attrs.get('i'));
    if (!r || !r.startsWith(this.nonce) || r.length === this.nonce.length) throw new ScramError('server nonce does not extend the client nonce');
    if (!s) throw new ScramError('server sent no salt');
    if (!Number.isInteger(i) || i < 1 || i > 10_000_000) throw new ScramError('server sent a bad iteration count');
    const keys = await keysFor(this.password, Buffer.from(s, 'base64'), i);
    const withoutProof = `c=biws,r=${r}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(keys.storedKey, authMessage);
    const proof = Buffer.allocUnsafe(32);
    for (let j = 0; j < 32; j++) proof[j] = keys.clientKey[j]! ^ signature[j]!;
    this.serverSignature = hmac(keys.serverKey, authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }

  /** Checks the server-final-message `v=…`: proves the server knew the password too. */
  verify(serverFinal: string): void {
    const m = /(?:^|,)v=([A-Za-z0-9+/=]+)/.exec(serverFinal);
    if (!m || !this.serverSignature) throw new ScramError('server final message without a signature');
    const got = Buffer.from(m[1]!, 'base64');
    if (got.length !== 32 || !timingSafeEqual(got, this.serverSignature)) throw new ScramError('server signature does not match');
  }
}

/** PasswordMessage content for AuthenticationMD5Password: "md5" + md5(md5(password + user) + salt). */
export function md5Password(user: string, password: Buffer, salt: Buffer): string {
  const inner = createHash('md5').update(password).update(user).digest('hex');
  return 'md5' + createHash('md5').update(inner).update(salt).digest('hex');
}
