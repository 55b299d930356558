import { chmodSync, closeSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { isCorruption, SqliteIndexStore } from './sqlite-index.js';

/** Identity of the file at `path` (device and inode), '' when there is none. */
export function indexFileId(path: string): string {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return '';
  }
}

/** Deletes the index and its WAL files. The index holds recorded text: no copy is kept. */
export function removeIndexFile(path: string): void {
  for (const p of [path, `${path}-wal`, `${path}-shm`]) rmSync(p, { force: true });
}

/**
 * Opens the index for writing. A file that is damaged, not SQLite or of another schema version
 * is deleted and started afresh (`reset` says why): everything in it comes from the recordings,
 * which the caller then reads again.
 */
export function openIndexFile(path: string, opts: { check?: boolean } = {}): { store: SqliteIndexStore; reset?: string } {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  ownerOnly(path);
  try {
    const store = new SqliteIndexStore(path);
    try {
      if (opts.check) store.check();
      return { store };
    } catch (err) {
      store.close();
      throw err;
    }
  } catch (err) {
    if (!isCorruption(err)) throw err;
    removeIndexFile(path);
    ownerOnly(path);
    return { store: new SqliteIndexStore(path), reset: (err as Error).message };
  }
}

/** The index holds recorded text: the file is the owner's only (SQLite gives its WAL files the same mode). */
function ownerOnly(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}
