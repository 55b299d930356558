import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, open as openCallback, writeSync } from 'node:fs';
import { link, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** fs.open with a plain descriptor (a FileHandle cannot be closed synchronously). */
const openFd = promisify(openCallback);
/** Names of spare files (never `*.meta.json`, so no reader of the folder lists them). */
const SPARE = '.spare-';

/**
 * Atomic rewrites of the small files of one folder (the catalog's `ID.meta.json`): the new
 * text goes into another file, which is then renamed over the old one, so a reader sees the
 * old text or the new, never a mix.
 *
 * A rewrite frees no inode and usually creates none. On ext4 without a journal (this project's
 * machines) every file creation scans past each inode of its block group freed in the last one
 * to six minutes (`recently_deleted` in `find_inode_bit`), and a recording's files are created
 * in one group: a rename over an entry freed an inode per session, and creating files took
 * about half of a session's CPU. Here the replaced inode is first linked under a spare name,
 * and the next write goes into a spare (truncated) instead of a new file. A spare is written
 * only when no other name points at it (`nlink` 1), writes of one path are made one after the
 * other, and spares a stopped process left are removed at open (one linked to an entry when it
 * stopped is then only a name less).
 */
export class EntryFiles {
  private readonly spares: string[] = [];
  /** The write of each path under way, so writes of one path happen in order. */
  private readonly writing = new Map<string, Promise<void>>();

  private constructor(private readonly dir: string, private readonly maxSpares: number) {}

  static async open(dir: string, maxSpares = 32): Promise<EntryFiles> {
    for (const name of await readdir(dir)) if (name.startsWith(SPARE)) await rm(join(dir, name), { force: true });
    return new EntryFiles(dir, maxSpares);
  }

  /** For a catalog that only reads: no folder clean-up (a running proxy may own the spares). */
  static reader(dir: string): EntryFiles {
    return new EntryFiles(dir, 0);
  }

  /** Spare files kept now (tests). */
  get spareCount(): number {
    return this.spares.length;
  }

  /** Writes `text` as `path` (in this folder) atomically; `replaces`: the file may exist already. */
  write(path: string, text: string, replaces: boolean): Promise<void> {
    const before = this.writing.get(path);
    const done = (before ? before.catch(() => undefined) : Promise.resolve()).then(() => this.writeNow(path, text, replaces));
    this.writing.set(path, done);
    const forget = () => {
      if (this.writing.get(path) === done) this.writing.delete(path);
    };
    done.then(forget, forget);
    return done;
  }

  private async writeNow(path: string, text: string, replaces: boolean): Promise<void> {
    const keep = replaces ? join(this.dir, `${SPARE}${randomBytes(6).toString('hex')}`) : undefined;
    // The inode the entry has now is linked under a spare name while the new text is written.
    const [tmp, kept] = await Promise.all([
      this.fileWith(text),
      keep ? link(path, keep).then(() => true, (err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return false; throw err; }) : false,
    ]);
    try {
      await rename(tmp, path);
    } catch (err) {
      // Not renamed: the spare name still points at the entry, so only the name goes.
      if (kept) await rm(keep!, { force: true });
      this.spares.push(tmp);
      throw err;
    }
    if (!kept) return;
    if (this.spares.length < this.maxSpares) this.spares.push(keep!);
    else await rm(keep!, { force: true });
  }

  /** A file of this folder holding exactly `text`: a spare rewritten, or a new one. */
  private async fileWith(text: string): Promise<string> {
    let name = this.spares.pop();
    let fd: number | undefined;
    if (name) fd = await openFd(name, 'r+').catch(() => undefined); // gone (another catalog's open removed it): a new file
    let size = 0;
    if (fd !== undefined) {
      const st = fstatSync(fd);
      if (st.nlink !== 1) {
        // Another name points at this inode: it is never written into (only dropped from the pool).
        closeSync(fd);
        fd = undefined;
      }
      size = st.size;
    }
    if (fd === undefined) {
      name = join(this.dir, `${SPARE}${randomBytes(6).toString('hex')}`);
      fd = await openFd(name, 'wx', 0o600);
      size = 0;
    }
    try {
      const data = Buffer.from(text, 'utf8');
      for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at, at);
      // Cut only what the old text had beyond the new one (its block stays: nothing is freed).
      if (size > data.length) ftruncateSync(fd, data.length);
    } finally {
      closeSync(fd);
    }
    return name!;
  }
}
