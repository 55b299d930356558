import { Redis, type RedisOptions } from 'ioredis';
import type { Store } from './store.types.js';
import { assertKey, assertNamespace, deliver, encodeJson, KeyedMutex, redactUrl, StoreError, StoreUnavailable, ttlOf } from './store-shared.js';
import { TransactionPool, TransactionConnectError, StoreHealth, describe, quit, escapeGlob, sleep, withTimeout } from './store-redis-pool.js';

export interface RedisStoreOptions {
  /** Prepended to every key and channel. Default `"pam:"`. */
  prefix?: string;
  /** Give up opening (and each reconnect attempt) after this long. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** WATCH conflicts tolerated by one `update` before it fails. Default 100. */
  maxUpdateAttempts?: number;
  /** Connections kept for WATCH/MULTI transactions (one per concurrent update). Default 8. */
  maxTransactionConnections?: number;
  /** Subscriber handler errors, undecodable messages. Default: console.error. */
  onError?: (err: unknown) => void;
  /**
   * Called once per change of reachability after open (not per reconnect attempt), with a
   * one-line detail. Default: one console line per change.
   */
  onStateChange?: (state: 'unavailable' | 'available', detail: string) => void;
}

/**
 * Redis store for many proxy nodes.
 *
 * Keys are `${prefix}${ns}:${key}` holding JSON; a TTL is a real PX expiry, so grants expire in
 * Redis by themselves. `update` is WATCH/GET/MULTI/SET/EXEC on a dedicated connection, retried
 * on conflict; updates of one key from this process are also queued locally so they do not
 * conflict with each other. `update` without ttlMs keeps the key's expiry (SET KEEPTTL, Redis
 * >= 6); `set` without ttlMs makes the key persistent. Channels are `${prefix}${channel}` with
 * JSON messages on a separate subscriber connection.
 *
 * Opening fails if Redis cannot be reached within connectTimeoutMs: no endless retry loop at
 * start. After open, ioredis reconnects in the background and commands fail after a few retries.
 */
export async function openRedisStore(url: string, opts: RedisStoreOptions = {}): Promise<Store> {
  const prefix = opts.prefix ?? 'pam:';
  const timeout = opts.connectTimeoutMs ?? 3000;
  const where = redactUrl(url);
  const onError = opts.onError ?? ((err: unknown) => console.error('[store] redis:', err));
  const onStateChange = opts.onStateChange ?? ((state: 'unavailable' | 'available', detail: string) => {
    if (state === 'unavailable') console.error(`pam: store unavailable at ${where}: ${detail}; refusing new sessions and API calls until it is back`);
    else console.error(`pam: store available again at ${where}`);
  });
  const health = new StoreHealth(onStateChange);
  let opened = false;
  let lastError: unknown;
  const options: RedisOptions = {
    lazyConnect: true,
    connectTimeout: timeout,
    maxRetriesPerRequest: 2,
    // Before open succeeds: no retry, fail closed. After: back off up to 2 s.
    retryStrategy: (times) => (opened ? Math.min(times * 100, 2000) : null),
  };
  const connections: Redis[] = [];
  const connect = async (client: Redis): Promise<Redis> => {
    connections.push(client);
    // After open, connection errors are a state (one line per change), not a log line each.
    client.on('error', (err: unknown) => {
      lastError = err;
    });
    await withTimeout(client.connect(), timeout + 1000, 'connect timeout');
    return client;
  };
  try {
    const main = await connect(new Redis(url, options));
    const version = /redis_version:(\d+)/.exec(await main.info('server'))?.[1];
    if (version !== undefined && Number(version) < 6) {
      throw new Error(`Redis ${version} is too old; SET KEEPTTL needs Redis 6 or later`);
    }
    const sub = await connect(main.duplicate());
    opened = true;
    main.on('ready', () => health.up());
    main.on('close', () => health.down(describe(lastError)));
    return new RedisStore(main, sub, prefix, where, opts, onError, health);
  } catch (err) {
    for (const c of connections) c.disconnect();
    const reason = lastError instanceof Error ? lastError.message : err instanceof Error ? err.message : String(err);
    throw new StoreError(`cannot open Redis store at ${where}: ${reason}`, { cause: lastError ?? err });
  }
}

type UpdateOutcome<T> = { kind: 'done'; value: T | undefined } | { kind: 'conflict' } | { kind: 'threw'; error: unknown };

class RedisStore implements Store {
  private readonly mutex = new KeyedMutex();
  private readonly pool: TransactionPool;
  private readonly handlers = new Map<string, Set<(message: unknown) => void>>();
  private readonly maxAttempts: number;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly sub: Redis,
    private readonly prefix: string,
    private readonly where: string,
    opts: RedisStoreOptions,
    private readonly onError: (err: unknown) => void,
    private readonly health: StoreHealth,
  ) {
    this.maxAttempts = opts.maxUpdateAttempts ?? 100;
    this.pool = new TransactionPool(redis, opts.maxTransactionConnections ?? 8);
    sub.on('message', (channel: string, raw: string) => this.handleMessage(channel, raw));
  }

  async get<T>(ns: string, key: string): Promise<T | undefined> {
    const k = this.key(ns, key);
    return this.decode<T>(k, await this.guard(() => this.redis.get(k)));
  }

  async set<T>(ns: string, key: string, value: T, opts?: { ttlMs?: number }): Promise<void> {
    const k = this.key(ns, key);
    const ttl = ttlOf(opts);
    const json = encodeJson(value, `set ${ns}/${key}`);
    await this.guard(() => (ttl === undefined ? this.redis.set(k, json) : this.redis.set(k, json, 'PX', ttl)));
  }

  async update<T>(
    ns: string,
    key: string,
    fn: (current: T | undefined) => T | undefined,
    opts?: { ttlMs?: number },
  ): Promise<T | undefined> {
    const k = this.key(ns, key);
    const ttl = ttlOf(opts);
    return this.mutex.run(k, async () => {
      for (let attempt = 1; ; attempt++) {
        const outcome = await this.guard(() => this.pool.use((c) => this.tryUpdate(c, k, fn, ttl)));
        if (outcome.kind === 'threw') throw outcome.error;
        if (outcome.kind === 'done') return outcome.value;
        if (attempt >= this.maxAttempts) {
          throw new StoreError(`update of ${k} lost ${attempt} WATCH races in a row; giving up`);
        }
        await sleep(Math.random() * Math.min(2 * attempt, 50));
      }
    });
  }

  async delete(ns: string, key: string): Promise<boolean> {
    const k = this.key(ns, key);
    return (await this.guard(() => this.redis.del(k))) > 0;
  }

  async list<T>(ns: string): Promise<T[]> {
    const base = this.key(ns, 'x').slice(0, -1);
    const pattern = escapeGlob(base) + '*';
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await this.guard(() => this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500));
      for (const k of batch) keys.add(k);
      cursor = next;
    } while (cursor !== '0');
    const all = [...keys];
    const out: T[] = [];
    for (let i = 0; i < all.length; i += 500) {
      const chunk = all.slice(i, i + 500);
      const values = await this.guard(() => this.redis.mget(...chunk));
      values.forEach((raw, j) => {
        // null: expired or deleted between SCAN and MGET.
        const v = this.decode<T>(chunk[j], raw);
        if (v !== undefined) out.push(v);
      });
    }
    return out;
  }

  async publish(channel: string, message: unknown): Promise<void> {
    this.open();
    const json = encodeJson(message, `publish ${channel}`);
    await this.guard(() => this.redis.publish(this.prefix + channel, json));
  }

  async subscribe(channel: string, handler: (message: unknown) => void): Promise<() => Promise<void>> {
    this.open();
    const ch = this.prefix + channel;
    // Decisions about (un)subscribing are taken synchronously against the handler set; Redis
    // runs the commands in order on the one subscriber connection, so the result is consistent.
    let set = this.handlers.get(ch);
    const first = !set;
    if (!set) this.handlers.set(ch, (set = new Set()));
    const listener = (message: unknown): void => handler(message);
    set.add(listener);
    if (first) {
      try {
        await this.guard(() => this.sub.subscribe(ch));
      } catch (err) {
        set.delete(listener);
        if (set.size === 0 && this.handlers.get(ch) === set) this.handlers.delete(ch);
        if (err instanceof StoreUnavailable) throw err;
        throw new StoreError(`cannot subscribe to ${ch} at ${this.where}`, { cause: err });
      }
    }
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      set.delete(listener);
      if (set.size === 0 && this.handlers.get(ch) === set) {
        this.handlers.delete(ch);
        if (!this.closed) await this.sub.unsubscribe(ch);
      }
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.health.stop();
    this.handlers.clear();
    await this.pool.close();
    await Promise.allSettled([quit(this.sub), quit(this.redis)]);
  }

  // ---- internals ----

  /**
   * Runs one Redis call. While the connection is known to be down it fails at once (no queue
   * of waiting requests); a failure that is not a Redis reply (connection lost, timeout,
   * retries exhausted) is StoreUnavailable. Redis replies (WRONGTYPE…) and our own checks
   * stay StoreError.
   */
  private async guard<R>(fn: () => Promise<R>): Promise<R> {
    if (!this.health.isUp()) throw new StoreUnavailable({ cause: new Error(`Redis at ${this.where} is down`) });
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreError && !(err instanceof TransactionConnectError)) throw err;
      if ((err as Error)?.name === 'ReplyError') throw new StoreError(`Redis at ${this.where} refused a command`, { cause: err });
      throw new StoreUnavailable({ cause: err });
    }
  }

  private open(): void {
    if (this.closed) throw new StoreError(`Redis store at ${this.where} is closed`);
  }

  private key(ns: string, key: string): string {
    this.open();
    assertNamespace(ns);
    assertKey(key);
    return `${this.prefix}${ns}:${key}`;
  }

  private decode<T>(k: string, raw: string | null): T | undefined {
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch (err) {
      throw new StoreError(`corrupt value at Redis key ${k}: not valid JSON`, { cause: err });
    }
  }

  /**
   * One optimistic attempt. `conflict`: another writer touched the key first. `threw`: fn (or
   * decoding) threw after we UNWATCHed, so the connection is clean and nothing was written. Any
   * error thrown from here is a Redis failure and the pool drops the connection.
   */
  private async tryUpdate<T>(
    c: Redis,
    k: string,
    fn: (current: T | undefined) => T | undefined,
    ttl: number | undefined,
  ): Promise<UpdateOutcome<T>> {
    await c.watch(k);
    const raw = await c.get(k);
    let json: string | undefined;
    try {
      const next = fn(this.decode<T>(k, raw));
      json = next === undefined ? undefined : encodeJson(next, `update ${k}`);
    } catch (error) {
      await c.unwatch();
      return { kind: 'threw', error };
    }
    if (json === undefined && raw === null) {
      await c.unwatch();
      return { kind: 'done', value: undefined };
    }
    const tx = c.multi();
    if (json === undefined) tx.del(k);
    else if (ttl !== undefined) tx.set(k, json, 'PX', ttl);
    else tx.set(k, json, 'KEEPTTL');
    const results = await tx.exec();
    if (results === null) return { kind: 'conflict' };
    for (const [err] of results) if (err) throw new StoreError(`update of ${k} failed`, { cause: err });
    return { kind: 'done', value: json === undefined ? undefined : (JSON.parse(json) as T) };
  }

  private handleMessage(channel: string, raw: string): void {
    const set = this.handlers.get(channel);
    if (!set || set.size === 0) return;
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      this.onError(new StoreError(`undecodable message on ${channel}`, { cause: err }));
      return;
    }
    deliver(set, message, this.onError);
  }
}
