import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, realpath, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from './store.types.js';
import { assertKey, assertNamespace, deliver, encodeJson, KeyedMutex, StoreError, ttlOf } from './store-shared.js';

export interface EmbeddedStoreOptions {
  /** How often expired entries are removed from memory and disk. Default 1000 ms. */
  sweepIntervalMs?: number;
  /** Errors thrown by subscribers and background sweeps. Default: console.error. */
  onError?: (err: unknown) => void;
}

/**
 * File-backed store for a single node.
 *
 * Layout under `dir` (0700): one `<namespace>.json` (0600) per namespace and a `LOCK` file with
 * the owner's pid. File format: `{"version":1,"entries":{"<key>":{"value":…,"expiresAt"?:ms}}}`.
 *
 * All state lives in memory; every write rewrites its namespace file atomically (temp file,
 * fsync, rename, fsync dir) before the promise resolves. Writes that arrive while a file is
 * being written are committed together in the next write (group commit). If a write fails, the
 * keys it carried are rolled back in memory and their callers get the error.
 *
 * Writes of one key are serialised; an in-flight write is visible to `get` before it is durable.
 * `update` without ttlMs keeps the key's current expiry (like Redis SET KEEPTTL); `set` without
 * ttlMs makes the key persistent.
 */
export async function openEmbeddedStore(dir: string, opts: EmbeddedStoreOptions = {}): Promise<Store> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const root = await realpath(dir);
  const lock = await acquireLock(root);
  try {
    const namespaces = await loadAll(root);
    return new EmbeddedStore(root, namespaces, lock, opts);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

interface Entry {
  json: string;
  expiresAt?: number;
}

const FILE_SUFFIX = '.json';
const TMP_SUFFIX = '.tmp';
const openDirs = new Set<string>();

class EmbeddedStore implements Store {
  private readonly mutex = new KeyedMutex();
  private readonly bus = new EventEmitter();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly onError: (err: unknown) => void;
  private closed = false;

  constructor(
    private readonly root: string,
    private readonly namespaces: Map<string, NamespaceFile>,
    private readonly lock: Lock,
    opts: EmbeddedStoreOptions,
  ) {
    this.bus.setMaxListeners(0);
    this.onError = opts.onError ?? ((err) => console.error('[store] embedded:', err));
    this.sweeper = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 1000);
    this.sweeper.unref();
  }

  async get<T>(ns: string, key: string): Promise<T | undefined> {
    this.check(ns, key);
    const entry = this.live(ns, key);
    return entry ? (JSON.parse(entry.json) as T) : undefined;
  }

  async set<T>(ns: string, key: string, value: T, opts?: { ttlMs?: number }): Promise<void> {
    this.check(ns, key);
    const ttl = ttlOf(opts);
    const json = encodeJson(value, `set ${ns}/${key}`);
    return this.track(ns, key, async () => {
      await this.write(ns, key, { json, expiresAt: ttl === undefined ? undefined : Date.now() + ttl });
    });
  }

  async update<T>(
    ns: string,
    key: string,
    fn: (current: T | undefined) => T | undefined,
    opts?: { ttlMs?: number },
  ): Promise<T | undefined> {
    this.check(ns, key);
    const ttl = ttlOf(opts);
    return this.track(ns, key, async () => {
      const current = this.live(ns, key);
      const next = fn(current ? (JSON.parse(current.json) as T) : undefined);
      if (next === undefined) {
        if (this.namespaces.get(ns)?.entries.has(key)) await this.write(ns, key, undefined);
        return undefined;
      }
      const json = encodeJson(next, `update ${ns}/${key}`);
      const expiresAt = ttl !== undefined ? Date.now() + ttl : current?.expiresAt;
      await this.write(ns, key, { json, expiresAt });
      return JSON.parse(json) as T;
    });
  }

  async delete(ns: string, key: string): Promise<boolean> {
    this.check(ns, key);
    return this.track(ns, key, async () => {
      const existed = this.live(ns, key) !== undefined;
      if (this.namespaces.get(ns)?.entries.has(key)) await this.write(ns, key, undefined);
      return existed;
    });
  }

  async list<T>(ns: string): Promise<T[]> {
    this.check(ns);
    const file = this.namespaces.get(ns);
    if (!file) return [];
    const now = Date.now();
    const out: T[] = [];
    for (const entry of file.entries.values()) {
      if (!isExpired(entry, now)) out.push(JSON.parse(entry.json) as T);
    }
    return out;
  }

  async publish(channel: string, message: unknown): Promise<void> {
    this.check();
    // A JSON round trip, as over Redis: handlers get their own copy and the same types.
    const copy = JSON.parse(encodeJson(message, `publish ${channel}`)) as unknown;
    deliver(this.bus.listeners(channel) as Array<(m: unknown) => void>, copy, this.onError);
  }

  async subscribe(channel: string, handler: (message: unknown) => void): Promise<() => Promise<void>> {
    this.check();
    // Wrap so the same handler subscribed twice is two subscriptions, removed one at a time.
    const listener = (message: unknown): void => handler(message);
    this.bus.on(channel, listener);
    return async () => {
      this.bus.off(channel, listener);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.bus.removeAllListeners();
    await Promise.allSettled([...this.inflight]);
    await Promise.allSettled([...this.namespaces.values()].map((f) => f.idle()));
    await this.lock.release();
  }

  // ---- internals ----

  private check(ns?: string, key?: string): void {
    if (this.closed) throw new StoreError(`embedded store ${this.root} is closed`);
    if (ns !== undefined) assertNamespace(ns);
    if (key !== undefined) assertKey(key);
  }

  /** Runs a mutation under the key's mutex and lets close() wait for it. */
  private track<R>(ns: string, key: string, task: () => Promise<R>): Promise<R> {
    const p = this.mutex.run(`${ns}\u0000${key}`, async () => {
      if (this.closed) throw new StoreError(`embedded store ${this.root} is closed`);
      return task();
    });
    this.inflight.add(p);
    const forget = (): void => void this.inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private live(ns: string, key: string): Entry | undefined {
    const entry = this.namespaces.get(ns)?.entries.get(key);
    return entry && !isExpired(entry, Date.now()) ? entry : undefined;
  }

  /** Applies the change in memory and resolves once it is on disk (or rolls it back). */
  private write(ns: string, key: string, entry: Entry | undefined): Promise<void> {
    let file = this.namespaces.get(ns);
    if (!file) {
      file = new NamespaceFile(join(this.root, ns + FILE_SUFFIX), this.root, new Map());
      this.namespaces.set(ns, file);
    }
    const entries = file.entries;
    const previous = entries.get(key);
    if (entry) entries.set(key, entry);
    else entries.delete(key);
    return file.persist(() => {
      if (previous) entries.set(key, previous);
      else entries.delete(key);
    });
  }

  private sweep(): void {
    const now = Date.now();
    for (const file of this.namespaces.values()) {
      let removed = 0;
      for (const [key, entry] of file.entries) {
        if (isExpired(entry, now)) {
          file.entries.delete(key);
          removed++;
        }
      }
      // Expired entries are already invisible; a failed sweep write is retried by the next write.
      if (removed > 0) file.persist().catch(this.onError);
    }
  }
}

function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== undefined && entry.expiresAt <= now;
}

interface PendingWrite {
  resolve: () => void;
  reject: (err: unknown) => void;
  rollback?: () => void;
}

/** One namespace's entries and the single writer of its file. */
class NamespaceFile {
  private pending: PendingWrite[] = [];
  private running: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly dir: string,
    readonly entries: Map<string, Entry>,
  ) {}

  persist(rollback?: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject, rollback });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    // `running` is cleared only after drain() settles, whether it awaited or not; anything
    // queued in between starts a new drain.
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.pending.length > 0) this.kick();
    });
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await atomicWrite(this.path, this.dir, this.serialise());
        for (const w of batch) w.resolve();
      } catch (err) {
        // Roll back before the next snapshot is taken, so memory never runs ahead of disk.
        for (const w of [...batch].reverse()) w.rollback?.();
        const error = new StoreError(`cannot write state file ${this.path}`, { cause: err });
        for (const w of batch) w.reject(error);
      }
    }
  }

  private serialise(): string {
    const parts: string[] = [];
    for (const [key, e] of this.entries) {
      const exp = e.expiresAt === undefined ? '' : `,"expiresAt":${e.expiresAt}`;
      parts.push(`${JSON.stringify(key)}:{"value":${e.json}${exp}}`);
    }
    return `{"version":1,"entries":{${parts.join(',\n')}}}\n`;
  }
}

async function atomicWrite(path: string, dir: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // The rename itself is only durable once the directory entry is.
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Loads every namespace file; any unreadable or malformed file fails the open. */
async function loadAll(root: string): Promise<Map<string, NamespaceFile>> {
  const namespaces = new Map<string, NamespaceFile>();
  const now = Date.now();
  for (const name of await readdir(root)) {
    const path = join(root, name);
    if (name.endsWith(TMP_SUFFIX)) {
      await unlink(path); // a write interrupted before its rename; the old file is intact
      continue;
    }
    if (!name.endsWith(FILE_SUFFIX)) continue;
    const ns = name.slice(0, -FILE_SUFFIX.length);
    try {
      assertNamespace(ns);
    } catch {
      throw new StoreError(`unexpected file in state directory: ${path}`);
    }
    const entries = parseStateFile(path, await readFile(path, 'utf8'), now);
    namespaces.set(ns, new NamespaceFile(path, root, entries));
  }
  return namespaces;
}

function parseStateFile(path: string, text: string, now: number): Map<string, Entry> {
  const corrupt = (why: string, cause?: unknown): StoreError =>
    new StoreError(`corrupt state file ${path}: ${why}; refusing to start (restore or remove the file)`, { cause });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw corrupt('not valid JSON', err);
  }
  if (!isObject(doc) || doc.version !== 1 || !isObject(doc.entries)) {
    throw corrupt('expected {"version":1,"entries":{…}}');
  }
  const entries = new Map<string, Entry>();
  for (const [key, raw] of Object.entries(doc.entries)) {
    if (!isObject(raw) || !('value' in raw) || raw.value === undefined) throw corrupt(`entry ${JSON.stringify(key)} has no value`);
    const exp = raw.expiresAt;
    if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) {
      throw corrupt(`entry ${JSON.stringify(key)} has a bad expiresAt`);
    }
    if (exp !== undefined && exp <= now) continue;
    entries.set(key, { json: JSON.stringify(raw.value), expiresAt: exp });
  }
  return entries;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Lock {
  release(): Promise<void>;
}

/**
 * One process per state directory: two writers would silently overwrite each other's files.
 * The lock is a file holding the owner's pid; a lock whose pid is gone (crash) is taken over.
 */
async function acquireLock(root: string): Promise<Lock> {
  if (openDirs.has(root)) throw new StoreError(`state directory ${root} is already open in this process`);
  const path = join(root, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      openDirs.add(root);
      return {
        release: async () => {
          openDirs.delete(root);
          await unlink(path).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError(`cannot lock ${path}`, { cause: err });
      const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new StoreError(`state directory ${root} is in use by pid ${pid} (${path}); if that is stale, remove the file`);
      }
      await unlink(path).catch(() => undefined);
    }
  }
  throw new StoreError(`cannot lock ${path}: another process keeps taking it`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
