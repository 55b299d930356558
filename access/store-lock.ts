import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from './store-shared.js';

const openDirs = new Set<string>();

export interface Lock {
  release(): Promise<void>;
}

/**
 * One process per state directory: two writers would silently overwrite each other's files.
 * The lock is a file holding the owner's pid; a lock whose pid is gone (crash) is taken over.
 */
export async function acquireLock(root: string): Promise<Lock> {
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
