import { stat } from 'node:fs/promises';

/**
 * Results of reading a recording file (an index, statement rows), kept until the file changes
 * (size or mtime). The owner creates one and passes it to the readers, so tests and servers
 * get their own; there is no module-global state.
 */
export class ReaderCache {
  private readonly entries = new Map<string, { size: number; mtimeMs: number; value: unknown }>();

  constructor(private readonly maxEntries = 200) {}

  async get<T>(key: string, path: string, build: () => Promise<T>): Promise<T> {
    const st = await stat(path);
    const hit = this.entries.get(key);
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.value as T;
    const value = await build();
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { size: st.size, mtimeMs: st.mtimeMs, value });
    return value;
  }
}

/** For callers without a cache: every read builds afresh. */
export const NO_CACHE = { get: <T>(_key: string, _path: string, build: () => Promise<T>): Promise<T> => build() };
export type ReaderCacheLike = Pick<ReaderCache, 'get'>;
