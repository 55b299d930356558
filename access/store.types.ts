/**
 * The one state interface. Two implementations: embedded (file-backed, single node) and Redis
 * (many proxy nodes). test/integration/store-contract.test.ts runs the same suite on both.
 *
 * Values are JSON-serialisable objects. `ns` is a namespace such as "requests" or "grants".
 */
export interface Store {
  get<T>(ns: string, key: string): Promise<T | undefined>;
  /** Writes the value; with ttlMs it disappears by itself after that long. */
  set<T>(ns: string, key: string, value: T, opts?: { ttlMs?: number }): Promise<void>;
  /**
   * Atomic read-modify-write. `fn` sees the current value (undefined if none) and returns the
   * new one, or undefined to delete. If `fn` throws, nothing is written and the error propagates.
   * Concurrent updates of the same key are serialised (the Redis one retries on WATCH conflict).
   */
  update<T>(
    ns: string,
    key: string,
    fn: (current: T | undefined) => T | undefined,
    opts?: { ttlMs?: number },
  ): Promise<T | undefined>;
  delete(ns: string, key: string): Promise<boolean>;
  /** All live (unexpired) values in a namespace, in no particular order. */
  list<T>(ns: string): Promise<T[]>;
  /** Fire-and-forget broadcast to every subscriber on every node. */
  publish(channel: string, message: unknown): Promise<void>;
  /** Returns an unsubscribe function. */
  subscribe(channel: string, handler: (message: unknown) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
