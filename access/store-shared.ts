// Helpers shared by the store implementations (internal; not part of the Store contract).

/** Every failure of a store (open, I/O, corrupt data, conflicts, misuse) is a StoreError. */
export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * The store cannot be reached right now (connection down, timed out): a typed condition the
 * API answers with 503 `unavailable` and the brokers with "try again" (SQLSTATE 57P03). The
 * message is the one users see; the cause (for operators) never reaches them.
 */
export class StoreUnavailable extends StoreError {
  static readonly MESSAGE = 'the access store is unavailable, try again';
  constructor(options?: { cause?: unknown }) {
    super(StoreUnavailable.MESSAGE, options);
    this.name = 'StoreUnavailable';
  }
}

/**
 * Namespaces become file names (embedded) and key segments (Redis `prefix + ns + ":"`), so they
 * are restricted: no ":" (one namespace's SCAN pattern would otherwise match another's keys),
 * no path separators, no leading dot.
 */
const NAMESPACE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

export function assertNamespace(ns: string): void {
  if (typeof ns !== 'string' || !NAMESPACE.test(ns)) {
    throw new StoreError(`invalid store namespace ${JSON.stringify(ns)}: use [A-Za-z0-9_.-], no leading dot, at most 100 chars`);
  }
}

export function assertKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) {
    throw new StoreError(`invalid store key ${JSON.stringify(key)}: a non-empty string of at most 1024 chars`);
  }
}

/** Validates an optional TTL and returns whole milliseconds (rounded up), or undefined. */
export function ttlOf(opts: { ttlMs?: number } | undefined): number | undefined {
  const ttl = opts?.ttlMs;
  if (ttl === undefined) return undefined;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
    throw new StoreError(`invalid ttlMs ${String(ttl)}: a positive finite number`);
  }
  return Math.ceil(ttl);
}

/**
 * JSON text of a value, which both stores keep instead of the object: callers never share a
 * mutable object with the store, and embedded and Redis see exactly the same data.
 */
export function encodeJson(value: unknown, what: string): string {
  if (value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function') {
    throw new StoreError(`${what}: got a Promise; the value (and an update fn) must be synchronous`);
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new StoreError(`${what}: value is not JSON-serialisable`, { cause: err });
  }
  if (json === undefined) {
    throw new StoreError(`${what}: value is not JSON-serialisable (use delete to remove a key)`);
  }
  return json;
}

/** Runs tasks one after another per key; tasks for different keys run concurrently. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  run<R>(key: string, task: () => Promise<R>): Promise<R> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/** Calls every handler with the message; a throwing (or rejecting) handler never reaches the publisher. */
export function deliver(
  handlers: Iterable<(message: unknown) => void>,
  message: unknown,
  onError: (err: unknown) => void,
): void {
  for (const handler of [...handlers]) {
    try {
      const ret = handler(message) as unknown;
      if (ret && typeof (ret as Promise<unknown>).then === 'function') {
        (ret as Promise<unknown>).then(undefined, onError);
      }
    } catch (err) {
      onError(err);
    }
  }
}

/** Hides the password of a connection URL in messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}
