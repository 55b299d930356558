import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../../access/store-embedded.js';
import { openRedisStore } from '../../access/store-redis.js';
import { openStore, StoreError } from '../../access/store.js';
import type { Store } from '../../access/store.types.js';

const REDIS_URL = process.env.PAM_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** One backend instance for one test: `open` may be called again to reopen the same state. */
interface Backend {
  open(onError?: (err: unknown) => void): Promise<Store>;
  cleanup(): Promise<void>;
}

interface Counter {
  n: number;
}

async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function storeContract(name: string, makeBackend: () => Promise<Backend>): void {
  describe(`Store contract: ${name}`, () => {
    let backend: Backend;
    let opened: Store[];
    const open = async (onError?: (err: unknown) => void): Promise<Store> => {
      const s = await backend.open(onError);
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      backend = await makeBackend();
      opened = [];
    });
    afterEach(async () => {
      await Promise.allSettled(opened.map((s) => s.close()));
      await backend.cleanup();
    });

    it('gets, sets, deletes and lists', async () => {
      const s = await open();
      expect(await s.get('requests', 'r1')).toBeUndefined();
      await s.set('requests', 'r1', { id: 'r1', status: 'pending' });
      await s.set('requests', 'r2', { id: 'r2', status: 'approved' });
      expect(await s.get('requests', 'r1')).toEqual({ id: 'r1', status: 'pending' });
      await s.set('requests', 'r1', { id: 'r1', status: 'denied' });
      expect(await s.get('requests', 'r1')).toEqual({ id: 'r1', status: 'denied' });
      const all = await s.list<{ id: string }>('requests');
      expect(all.map((r) => r.id).sort()).toEqual(['r1', 'r2']);
      expect(await s.delete('requests', 'r1')).toBe(true);
      expect(await s.delete('requests', 'r1')).toBe(false);
      expect(await s.get('requests', 'r1')).toBeUndefined();
      expect(await s.list('requests')).toEqual([{ id: 'r2', status: 'approved' }]);
      expect(await s.list('empty')).toEqual([]);
    });

    it('hands out copies, not the stored object', async () => {
      const s = await open();
      const v = { tags: ['a'] };
      await s.set('ns', 'k', v);
      v.tags.push('mutated');
      const got = await s.get<{ tags: string[] }>('ns', 'k');
      got!.tags.push('again');
      expect(await s.get('ns', 'k')).toEqual({ tags: ['a'] });
    });

    it('keeps namespaces isolated', async () => {
      const s = await open();
      await s.set('grants', 'x', { ns: 'grants' });
      await s.set('locks', 'x', { ns: 'locks' });
      expect(await s.get('grants', 'x')).toEqual({ ns: 'grants' });
      expect(await s.get('locks', 'x')).toEqual({ ns: 'locks' });
      expect(await s.list('grants')).toEqual([{ ns: 'grants' }]);
      await s.delete('grants', 'x');
      expect(await s.get('locks', 'x')).toEqual({ ns: 'locks' });
      expect(await s.list('grants')).toEqual([]);
      // ":" would let one namespace's Redis SCAN pattern match another's keys.
      await expect(s.set('grants:evil', 'x', {})).rejects.toThrow(StoreError);
      await expect(s.get('../etc', 'x')).rejects.toThrow(StoreError);
    });

    it('expires values with a ttl from get and list', async () => {
      const s = await open();
      await s.set('grants', 'short', { id: 'short' }, { ttlMs: 150 });
      await s.set('grants', 'long', { id: 'long' }, { ttlMs: 60_000 });
      await s.set('grants', 'forever', { id: 'forever' });
      await s.update<Counter>('grants', 'updated', () => ({ n: 1 }), { ttlMs: 150 });
      await eventually(async () => (await s.get('grants', 'short')) === undefined, 'short ttl to expire');
      await eventually(async () => (await s.get('grants', 'updated')) === undefined, 'update ttl to expire');
      const ids = (await s.list<{ id: string }>('grants')).map((g) => g.id).sort();
      expect(ids).toEqual(['forever', 'long']);
      expect(await s.delete('grants', 'short')).toBe(false);
    });

    it('update without ttlMs keeps the existing expiry', async () => {
      const s = await open();
      await s.set('grants', 'g', { n: 0 }, { ttlMs: 1500 });
      await s.update<Counter>('grants', 'g', (c) => ({ n: (c?.n ?? 0) + 1 }));
      expect(await s.get('grants', 'g')).toEqual({ n: 1 });
      await eventually(async () => (await s.get('grants', 'g')) === undefined, 'kept ttl to expire');
    });

    it('serialises 50 concurrent updates of one key', async () => {
      const s = await open();
      const results = await Promise.all(
        Array.from({ length: 50 }, () => s.update<Counter>('counters', 'c', (cur) => ({ n: (cur?.n ?? 0) + 1 }))),
      );
      expect(await s.get('counters', 'c')).toEqual({ n: 50 });
      expect(results.map((r) => r!.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('writes nothing when the update fn throws, and propagates the error', async () => {
      const s = await open();
      await s.set('requests', 'r', { status: 'pending' });
      const boom = new Error('approver not allowed');
      await expect(
        s.update('requests', 'r', () => {
          throw boom;
        }),
      ).rejects.toBe(boom);
      await expect(
        s.update('requests', 'absent', () => {
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await s.get('requests', 'r')).toEqual({ status: 'pending' });
      expect(await s.get('requests', 'absent')).toBeUndefined();
      // The key is not left locked.
      expect(await s.update('requests', 'r', () => ({ status: 'approved' }))).toEqual({ status: 'approved' });
    });

    it('deletes when the update fn returns undefined', async () => {
      const s = await open();
      await s.set('locks', 'l', { by: 'sec' });
      let seen: unknown;
      const result = await s.update('locks', 'l', (cur) => {
        seen = cur;
        return undefined;
      });
      expect(seen).toEqual({ by: 'sec' });
      expect(result).toBeUndefined();
      expect(await s.get('locks', 'l')).toBeUndefined();
      expect(await s.list('locks')).toEqual([]);
      expect(await s.update('locks', 'never', () => undefined)).toBeUndefined();
    });

    it('publishes to subscribers, survives a throwing handler, and stops after unsubscribe', async () => {
      const errors: unknown[] = [];
      const s = await open((e) => errors.push(e));
      const got: unknown[] = [];
      const sentinel: unknown[] = [];
      const unsubThrowing = await s.subscribe('grants.revoked', () => {
        throw new Error('handler bug');
      });
      const unsub = await s.subscribe('grants.revoked', (m) => got.push(m));
      await s.subscribe('sentinel', (m) => sentinel.push(m));
      await s.publish('grants.revoked', { grantId: 'g1' });
      await eventually(() => got.length === 1, 'first message');
      expect(got).toEqual([{ grantId: 'g1' }]);
      await unsub();
      await unsubThrowing();
      await s.publish('grants.revoked', { grantId: 'g2' });
      await s.publish('sentinel', 'after');
      // Messages arrive in publish order, so once the sentinel is here g2 would have been too.
      await eventually(() => sentinel.length === 1, 'sentinel');
      expect(got).toEqual([{ grantId: 'g1' }]);
      expect(errors).toHaveLength(1);
      expect((errors[0] as Error).message).toBe('handler bug');
    });

    it('keeps values across close and reopen', async () => {
      const s = await open();
      await s.set('grants', 'g', { id: 'g' }, { ttlMs: 60_000 });
      await s.set('requests', 'r', { id: 'r' });
      await s.update<Counter>('counters', 'c', () => ({ n: 7 }));
      await s.set('requests', 'gone', { id: 'gone' });
      await s.delete('requests', 'gone');
      await s.close();
      const again = await open();
      expect(await again.get('grants', 'g')).toEqual({ id: 'g' });
      expect(await again.list('requests')).toEqual([{ id: 'r' }]);
      expect(await again.get('counters', 'c')).toEqual({ n: 7 });
      await expect(s.get('grants', 'g')).rejects.toThrow(StoreError);
    });
  });
}

// ---------------------------------------------------------------------------------------------

const tmpDirs: string[] = [];
async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pam-store-'));
  tmpDirs.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(tmpDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

storeContract('embedded', async () => {
  const dir = join(await freshDir(), 'state');
  return { open: (onError) => openEmbeddedStore(dir, { sweepIntervalMs: 50, onError }), cleanup: async () => undefined };
});

const RUN = randomBytes(4).toString('hex');
let testNo = 0;

async function deleteKeys(raw: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await raw.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

storeContract('redis', async () => {
  const prefix = `pamtest:${RUN}:${testNo++}:`;
  return {
    open: (onError) => openRedisStore(REDIS_URL, { prefix, onError }),
    cleanup: async () => {
      const raw = new Redis(REDIS_URL);
      try {
        await deleteKeys(raw, prefix);
      } finally {
        raw.disconnect();
      }
    },
  };
});

describe('embedded store specifics', () => {
  it('creates the state dir 0700 and files 0600', async () => {
    const dir = join(await freshDir(), 'nested', 'state');
    const s = await openEmbeddedStore(dir);
    await s.set('grants', 'g', { id: 'g' });
    await s.close();
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'grants.json'))).mode & 0o777).toBe(0o600);
  });

  it('fails closed on a corrupt state file, naming the file', async () => {
    const dir = await freshDir();
    const s = await openEmbeddedStore(dir);
    await s.set('grants', 'g', { id: 'g' });
    await s.close();
    const file = join(dir, 'grants.json');
    await writeFile(file, '{"version":1,"entries":{"g":{"value":{"id":');
    const err = await openEmbeddedStore(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(/corrupt/);
    // Wrong shape is corrupt too, not an empty start.
    await writeFile(file, '{"entries":[]}');
    await expect(openEmbeddedStore(dir)).rejects.toThrow(file);
  });

  it('refuses a second open of the same dir and leaves no temp files', async () => {
    const dir = await freshDir();
    const s = await openEmbeddedStore(dir);
    await expect(openEmbeddedStore(dir)).rejects.toThrow(/already open/);
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.set('ns', `k${i}`, { i })));
    await s.close();
    expect((await readdir(dir)).sort()).toEqual(['ns.json']);
    const again = await openEmbeddedStore(dir);
    expect(await again.list('ns')).toHaveLength(20);
    await again.close();
  });

  it('rolls a failed write back in memory and rejects, then recovers', async () => {
    const dir = await freshDir();
    const s = await openEmbeddedStore(dir);
    try {
      await s.set('grants', 'k1', { id: 'k1' });
      // A non-empty directory where the namespace file should be: rename fails, even as root.
      const file = join(dir, 'grants.json');
      await rm(file);
      await mkdir(join(file, 'blocker'), { recursive: true });
      const err = await s.set('grants', 'k2', { id: 'k2' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StoreError); // the injected fault fired
      expect((err as Error).message).toContain(file);
      expect(await s.get('grants', 'k2')).toBeUndefined();
      expect(await s.update('grants', 'k1', () => ({ id: 'k1', v: 2 })).catch(() => 'failed')).toBe('failed');
      expect(await s.get('grants', 'k1')).toEqual({ id: 'k1' });
      await rm(file, { recursive: true });
      await s.set('grants', 'k3', { id: 'k3' });
      await s.close();
      const again = await openEmbeddedStore(dir);
      expect((await again.list<{ id: string }>('grants')).map((g) => g.id).sort()).toEqual(['k1', 'k3']);
      await again.close();
    } finally {
      await s.close();
    }
  });

  it('openStore("embedded") uses <dataDir>/state', async () => {
    const dataDir = await freshDir();
    const s = await openStore('embedded', dataDir);
    await s.set('ns', 'k', 1);
    await s.close();
    expect(await readdir(join(dataDir, 'state'))).toContain('ns.json');
  });
});

describe('redis store specifics', () => {
  const prefix = `pamtest:${RUN}:specific:`;
  let raw: Redis;
  beforeEach(() => {
    raw = new Redis(REDIS_URL);
  });
  afterEach(async () => {
    await deleteKeys(raw, prefix);
    raw.disconnect();
  });

  it('stores a grant with a real Redis expiry (PTTL) and JSON value', async () => {
    const s = await openRedisStore(REDIS_URL, { prefix });
    try {
      await s.set('grants', 'g1', { id: 'g1', login: 'root' }, { ttlMs: 60_000 });
      await s.set('requests', 'r1', { id: 'r1' });
      const pttl = await raw.pttl(`${prefix}grants:g1`);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);
      expect(await raw.pttl(`${prefix}requests:r1`)).toBe(-1);
      expect(JSON.parse((await raw.get(`${prefix}grants:g1`))!)).toEqual({ id: 'g1', login: 'root' });
      await s.update('grants', 'g1', (g) => ({ ...(g as object), revoked: true }));
      expect(await raw.pttl(`${prefix}grants:g1`)).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });

  it('keeps updates atomic across two nodes (WATCH conflicts retried) and publishes across them', async () => {
    const a = await openRedisStore(REDIS_URL, { prefix });
    const b = await openRedisStore(REDIS_URL, { prefix });
    try {
      const inc = (s: Store) => s.update<Counter>('counters', 'c', (cur) => ({ n: (cur?.n ?? 0) + 1 }));
      await Promise.all(Array.from({ length: 25 }, () => [inc(a), inc(b)]).flat());
      expect(await a.get('counters', 'c')).toEqual({ n: 50 });
      const got: unknown[] = [];
      await b.subscribe('locks', (m) => got.push(m));
      await a.publish('locks', { target: 'db1' });
      await eventually(() => got.length === 1, 'cross-node message');
      expect(got).toEqual([{ target: 'db1' }]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('retries an update whose key was changed by another writer after WATCH', async () => {
    const s = await openRedisStore(REDIS_URL, { prefix, maxUpdateAttempts: 3 });
    try {
      await s.set('requests', 'r', { approvals: [] as string[] });
      const seen: unknown[] = [];
      const result = await s.update<{ approvals: string[] }>('requests', 'r', (cur) => {
        seen.push(cur);
        // Another node approves between our WATCH/GET and EXEC: the write goes out on its own
        // connection right now, before our EXEC is even sent.
        if (seen.length === 1) void raw.set(`${prefix}requests:r`, JSON.stringify({ approvals: ['bob'] }));
        return { approvals: [...cur!.approvals, 'alice'] };
      });
      // The injected conflict fired: fn ran twice and the second run saw bob's approval.
      expect(seen).toEqual([{ approvals: [] }, { approvals: ['bob'] }]);
      expect(result).toEqual({ approvals: ['bob', 'alice'] });
      expect(await s.get('requests', 'r')).toEqual({ approvals: ['bob', 'alice'] });
    } finally {
      await s.close();
    }
  });

  it('gives up with a clear error after bounded WATCH conflicts', async () => {
    const s = await openRedisStore(REDIS_URL, { prefix, maxUpdateAttempts: 2 });
    try {
      let calls = 0;
      const attempt = s.update<Counter>('counters', 'hot', (cur) => {
        calls++;
        void raw.set(`${prefix}counters:hot`, JSON.stringify({ n: 1000 + calls }));
        return { n: (cur?.n ?? 0) + 1 };
      });
      await expect(attempt).rejects.toThrow(/lost 2 WATCH races/);
      expect(calls).toBe(2);
    } finally {
      await s.close();
    }
  });

  it('fails closed and fast when Redis is unreachable', async () => {
    const err = await openRedisStore('redis://127.0.0.1:1', { prefix }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(/cannot open Redis store at redis:\/\/127\.0\.0\.1:1.*ECONNREFUSED/);
  });

  it('redacts the password and rejects an unknown spec', async () => {
    await expect(openRedisStore('redis://:hunter2@127.0.0.1:1', { prefix })).rejects.toThrow(/\*\*\*/);
    await expect(openRedisStore('redis://:hunter2@127.0.0.1:1', { prefix })).rejects.not.toThrow(/hunter2/);
    await expect(openStore('memcached://x', '/tmp')).rejects.toThrow(StoreError);
  });
});
