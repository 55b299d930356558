import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile, rename, unlink, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Store } from './store.types.js';
import { VaultError, type Vault } from './vault.types.js';

const NS = 'secrets';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface Sealed {
  name: string; iv: string; tag: string; data: string; updatedAt: string;
  /** Set when the proxy rotated the credential at its target (access/rotation.ts). */
  rotatedAt?: string;
  /** The last failed rotation, why (never the secret), and when. */
  lastError?: string;
  lastErrorAt?: string;
  /**
   * The value before a rotation that has not finished: kept until the rotation proves which
   * one the target accepts, so a crash between the vault write and the target's change leaves
   * both at hand (sealed with the name + "\0previous" as additional data).
   */
  previous?: { iv: string; tag: string; data: string };
}

/** What `pam secret list` shows about a secret; never its value. */
export interface SecretInfo { name: string; updatedAt: string; rotatedAt?: string; lastError?: string; lastErrorAt?: string }

/**
 * The master key: PAM_MASTER_KEY (64 hex chars or base64 of 32 bytes), else
 * `{data_dir}/master.key`, created 0600 on first use.
 */
export async function loadMasterKey(dataDir: string, env = process.env): Promise<Buffer> {
  const fromEnv = env.PAM_MASTER_KEY;
  if (fromEnv) {
    const key = /^[0-9a-fA-F]{64}$/.test(fromEnv) ? Buffer.from(fromEnv, 'hex') : Buffer.from(fromEnv, 'base64');
    if (key.length !== 32) throw new VaultError('PAM_MASTER_KEY must be 32 bytes (64 hex characters or base64)');
    return key;
  }
  const path = join(dataDir, 'master.key');
  try {
    const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'hex');
    if (key.length !== 32) throw new VaultError(`${path} does not hold a 32-byte hex key`);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  const tmp = `${path}.${randomBytes(3).toString('hex')}.tmp`;
  await writeFile(tmp, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  await rename(tmp, path);
  return key;
}

/** Where sealed secrets live: the shared store (Redis, many nodes) or one file per secret. */
export interface SecretStorage {
  get(name: string): Promise<Sealed | undefined>;
  set(name: string, sealed: Sealed): Promise<void>;
  delete(name: string): Promise<boolean>;
  list(): Promise<Sealed[]>;
  /**
   * Takes the rotation lock of `name` for at most `ttlMs` (a crashed holder's lock expires);
   * resolves to its release, or undefined if someone else holds it.
   */
  lock(name: string, ttlMs: number): Promise<(() => Promise<void>) | undefined>;
}

const LOCKS = 'secret-locks';

export function storeSecretStorage(store: Store): SecretStorage {
  return {
    get: (name) => store.get<Sealed>(NS, name),
    set: (name, sealed) => store.set(NS, name, sealed),
    delete: (name) => store.delete(NS, name),
    list: () => store.list<Sealed>(NS),
    async lock(name, ttlMs) {
      const token = randomBytes(8).toString('hex');
      let mine = false;
      await store.update<{ token: string }>(LOCKS, name, (cur) => {
        if (cur) return cur;
        mine = true;
        return { token };
      }, { ttlMs });
      if (!mine) return undefined;
      return async () => {
        await store.update<{ token: string }>(LOCKS, name, (cur) => (cur?.token === token ? undefined : cur));
      };
    },
  };
}

/**
 * `data_dir/vault/NAME.sealed`, read at every use: with the embedded store this lets
 * `pam secret set` change a secret while the proxy runs (the store's files belong to the proxy
 * process then), and the proxy sees it at the next login.
 */
export function fileSecretStorage(dir: string): SecretStorage {
  const path = (name: string) => join(dir, `${name}.sealed`);
  // The sealed (still encrypted) file as last read, by its inode, mtime and size: a session open
  // costs one stat instead of reading the file; `pam secret set` replaces the file (a new inode).
  const read = new Map<string, { ino: number; mtimeMs: number; size: number; text: string }>();
  return {
    async get(name) {
      try {
        const st = await stat(path(name));
        const hit = read.get(name);
        if (hit && hit.ino === st.ino && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return JSON.parse(hit.text) as Sealed;
        const text = await readFile(path(name), 'utf8');
        const sealed = JSON.parse(text) as Sealed;
        read.set(name, { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, text });
        return sealed;
      } catch (err) {
        read.delete(name);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new VaultError(`secret file for "${name}" is unreadable`, { cause: err });
      }
    },
    async set(name, sealed) {
      read.delete(name);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const tmp = `${path(name)}.${randomBytes(3).toString('hex')}.tmp`;
      await writeFile(tmp, JSON.stringify(sealed), { mode: 0o600 });
      await rename(tmp, path(name));
    },
    async delete(name) {
      read.delete(name);
      try {
        await unlink(path(name));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
    },
    async list() {
      let names: string[];
      try {
        names = (await readdir(dir)).filter((n) => n.endsWith('.sealed'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
      const out: Sealed[] = [];
      for (const n of names) {
        const s = await this.get(n.slice(0, -'.sealed'.length));
        if (s) out.push(s);
      }
      return out;
    },
    async lock(name, ttlMs) {
      // O_EXCL lock file beside the secret: works between `pam serve` and a `pam secret rotate`.
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, `${name}.rotating`);
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await writeFile(file, String(process.pid), { flag: 'wx', mode: 0o600 });
          return async () => { await unlink(file).catch(() => undefined); };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          const age = Date.now() - (await stat(file).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
          if (age < ttlMs) return undefined;
          await unlink(file).catch(() => undefined);
        }
      }
      return undefined;
    },
  };
}

/**
 * Secrets sealed with AES-256-GCM under the master key, kept in the store (so every proxy node
 * sharing a Redis store, and the same master key, can open them). The secret's name is bound as
 * additional authenticated data, so a ciphertext cannot be moved to another name.
 */
export class StoreVault implements Vault {
  private readonly storage: SecretStorage;

  constructor(storage: Store | SecretStorage, private readonly key: Buffer) {
    this.storage = 'publish' in storage ? storeSecretStorage(storage) : storage;
  }

  private seal(aad: string, value: Buffer): { iv: string; tag: string; data: string } {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(aad));
    const data = Buffer.concat([c.update(value), c.final()]);
    return { iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
  }

  private open(aad: string, sealed: { iv: string; tag: string; data: string }, name: string): Buffer {
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
      d.setAAD(Buffer.from(aad));
      d.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      return Buffer.concat([d.update(Buffer.from(sealed.data, 'base64')), d.final()]);
    } catch (err) {
      throw new VaultError(`secret "${name}" cannot be decrypted (wrong master key or tampered)`, { cause: err });
    }
  }

  /** `rotated` stamps rotatedAt; `keepPrevious` keeps that value beside the new one (rotation in progress). */
  async set(name: string, value: Buffer, meta: { rotated?: boolean; keepPrevious?: Buffer } = {}): Promise<void> {
    if (!NAME.test(name)) throw new VaultError('secret names use letters, digits, "_", "." and "-" only');
    if (value.length === 0) throw new VaultError('secret value is empty');
    const now = new Date().toISOString();
    const sealed: Sealed = {
      name, ...this.seal(name, value), updatedAt: now, ...(meta.rotated ? { rotatedAt: now } : {}),
      ...(meta.keepPrevious ? { previous: this.seal(`${name}\0previous`, meta.keepPrevious) } : {}),
    };
    await this.storage.set(name, sealed);
  }

  /** The value kept by an unfinished rotation, if any. */
  async revealPrevious(name: string): Promise<Buffer | undefined> {
    const sealed = NAME.test(name) ? await this.storage.get(name) : undefined;
    return sealed?.previous ? this.open(`${name}\0previous`, sealed.previous, name) : undefined;
  }

  /** A rotation finished: forget the previous value. */
  async dropPrevious(name: string): Promise<void> {
    const sealed = NAME.test(name) ? await this.storage.get(name) : undefined;
    if (sealed?.previous) {
      const { previous: _p, ...rest } = sealed;
      await this.storage.set(name, rest);
    }
  }

  async reveal(name: string): Promise<Buffer> {
    const sealed = NAME.test(name) ? await this.storage.get(name) : undefined;
    if (!sealed) throw new VaultError(`secret "${name}" is not in the vault (pam secret set ${name})`);
    return this.open(name, sealed, name);
  }

  /** Metadata of every secret (no values), sorted by name. */
  async infos(): Promise<SecretInfo[]> {
    return (await this.storage.list()).map(({ name, updatedAt, rotatedAt, lastError, lastErrorAt }) => ({
      name, updatedAt, ...(rotatedAt ? { rotatedAt } : {}), ...(lastError ? { lastError, lastErrorAt } : {}),
    })).sort((a, b) => a.name.localeCompare(b.name));
  }

  async info(name: string): Promise<SecretInfo | undefined> {
    const s = NAME.test(name) ? await this.storage.get(name) : undefined;
    return s && { name: s.name, updatedAt: s.updatedAt, rotatedAt: s.rotatedAt, lastError: s.lastError, lastErrorAt: s.lastErrorAt };
  }

  /** Records a failed rotation on the secret's metadata; the sealed value is untouched. */
  async noteRotationError(name: string, error: string): Promise<void> {
    const s = NAME.test(name) ? await this.storage.get(name) : undefined;
    if (s) await this.storage.set(name, { ...s, lastError: error.slice(0, 500), lastErrorAt: new Date().toISOString() });
  }

  lock(name: string, ttlMs: number): Promise<(() => Promise<void>) | undefined> {
    return this.storage.lock(name, ttlMs);
  }

  async list(): Promise<string[]> {
    return (await this.storage.list()).map((s) => s.name).sort();
  }

  async remove(name: string): Promise<boolean> {
    return NAME.test(name) ? this.storage.delete(name) : false;
  }
}

/** The vault for a config: per-secret files with the embedded store, the store itself with Redis. */
export async function openVault(storeSpec: string, store: Store, dataDir: string): Promise<StoreVault> {
  const storage = storeSpec === 'embedded' ? fileSecretStorage(join(dataDir, 'vault')) : storeSecretStorage(store);
  return new StoreVault(storage, await loadMasterKey(dataDir));
}
