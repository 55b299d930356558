import { EventEmitter } from 'node:events';
import { chmod, mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from './store.types.js';
import { assertKey, assertNamespace, deliver, encodeJson, KeyedMutex, StoreError, ttlOf } from './store-shared.js';
import { FILE_SUFFIX, isExpired, loadAll, NamespaceFile, type Entry } from './store-embedded-file.js';
import { acquireLock, type Lock } from './store-lock.js';

export interface EmbeddedStoreOptions {
  /** How often expired entries are removed from memory and disk. Default 1000 ms. */
  sweepIntervalMs?: number;
  /** Errors thrown by subscribers and background sweeps. Default: console.error. */
  onError?: (err: unknown) => void;
}

/**
 * File-backed store for a single node.
 *
 * Layout under `dir` (0700): one `<namespace>.json` (0600) per namespace (format and writer in
 * store-embedded-file.ts) and a `LOCK` file with the owner's pid (store-lock.ts).
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

