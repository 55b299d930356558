// Connection plumbing of the Redis store (store-redis.ts): the transaction connection pool,
// store reachability, and small helpers. Internal to the Redis implementation.
import type { Redis } from 'ioredis';
import { StoreError } from './store-shared.js';

/**
 * WATCH state belongs to a connection, so each concurrent transaction needs its own. A
 * connection whose transaction failed for a reason other than the caller's fn is dropped, so a
 * stale WATCH can never leak into the next transaction.
 */
export class TransactionPool {
  private readonly idle: Redis[] = [];
  private readonly waiters: Array<{ resolve: (c: Redis) => void; reject: (err: unknown) => void }> = [];
  private size = 0;
  private closed = false;

  constructor(
    private readonly base: Redis,
    private readonly max: number,
  ) {}

  /** Runs task on a connection of its own; if task throws, that connection is discarded. */
  async use<R>(task: (c: Redis) => Promise<R>): Promise<R> {
    const c = await this.acquire();
    let healthy = false;
    try {
      const result = await task(c);
      healthy = true;
      return result;
    } finally {
      this.release(c, healthy);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new StoreError('Redis store is closed'));
    await Promise.allSettled(this.idle.splice(0).map(quit));
  }

  private async acquire(): Promise<Redis> {
    if (this.closed) throw new StoreError('Redis store is closed');
    const c = this.idle.pop();
    if (c) return c;
    if (this.size >= this.max) return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.size++;
    const fresh = this.base.duplicate();
    fresh.on('error', () => undefined); // surfaced through the failing command instead
    try {
      await fresh.connect();
      return fresh;
    } catch (err) {
      this.size--;
      fresh.disconnect();
      throw new TransactionConnectError('cannot open a Redis transaction connection', { cause: err });
    }
  }

  private release(c: Redis, healthy: boolean): void {
    if (this.closed) {
      this.size--;
      void quit(c);
      return;
    }
    if (!healthy) {
      this.size--;
      c.disconnect();
      const waiter = this.waiters.shift();
      if (waiter) this.acquire().then(waiter.resolve, waiter.reject);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(c);
    else this.idle.push(c);
  }
}

/** A transaction connection could not be opened: the store is unreachable, not misused. */
export class TransactionConnectError extends StoreError {}

/** Reachability of the store after open: one callback per change, never per retry. */
export class StoreHealth {
  private state: 'available' | 'unavailable' = 'available';
  private stopped = false;
  constructor(private readonly onChange: (state: 'unavailable' | 'available', detail: string) => void) {}
  isUp(): boolean {
    return this.state === 'available';
  }
  /** Closing the store on purpose is not an outage. */
  stop(): void {
    this.stopped = true;
  }
  down(detail: string): void {
    if (this.state === 'unavailable' || this.stopped) return;
    this.state = 'unavailable';
    this.onChange('unavailable', detail);
  }
  up(): void {
    if (this.state === 'available' || this.stopped) return;
    this.state = 'available';
    this.onChange('available', '');
  }
}

/** One line for a connection error: its code or message, never a stack. */
export function describe(err: unknown): string {
  const e = err as { code?: string; message?: string } | undefined;
  return e?.code ?? e?.message?.split('\n')[0] ?? 'connection closed';
}

export async function quit(c: Redis): Promise<void> {
  try {
    await withTimeout(c.quit(), 1000, 'quit timeout');
  } catch {
    c.disconnect();
  }
}

export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (ch) => '\\' + ch);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
