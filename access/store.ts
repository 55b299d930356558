import { join } from 'node:path';
import type { Store } from './store.types.js';
import { StoreError, redactUrl } from './store-shared.js';

export { StoreError, StoreUnavailable } from './store-shared.js';

export type { Store } from './store.types.js';

/**
 * Opens the state store named by `spec`:
 * - `"embedded"`: file-backed, single node, under `${dataDir}/state` (created 0700).
 * - `"redis://…"` / `"rediss://…"`: Redis, shared by many proxy nodes.
 *
 * `onError` takes errors after open (reconnects, subscriber faults); `pam serve` logs them once
 * per outage; `onStateChange` hears the Redis store go unreachable and come back, once per
 * change. Implementations are imported lazily so an embedded deployment never loads ioredis; their
 * shared helpers live in store-shared.ts.
 */
export async function openStore(
  spec: string,
  dataDir: string,
  opts: { onError?: (err: unknown) => void; onStateChange?: (state: 'unavailable' | 'available', detail: string) => void } = {},
): Promise<Store> {
  if (spec === 'embedded') {
    const { openEmbeddedStore } = await import('./store-embedded.js');
    return openEmbeddedStore(join(dataDir, 'state'), { onError: opts.onError });
  }
  if (spec.startsWith('redis://') || spec.startsWith('rediss://')) {
    const { openRedisStore } = await import('./store-redis.js');
    return openRedisStore(spec, opts);
  }
  throw new StoreError(`unknown store "${redactUrl(spec)}": expected "embedded" or a redis:// URL`);
}

