/**
 * rsync's file list as the receiving side reads it (flist.c recv_file_entry, protocol 30–32),
 * and the options of `rsync --server …` that shape it. Only what the proxy needs is kept per
 * entry: name, mode and length. Entries are sorted the way rsync sorts them (f_name_cmp), since
 * the transfer phase names files by their index in the sorted list.
 */
import { splitCommands } from '../../policies/shell-words.js';
import { byte, bytes, int32, RsyncWireError, varint, varlong, type Step } from './rsync-wire.js';

/** `rsync --server [--sender] -FLAGS[e.INFO] [--long…] . ARGS…` as the client's rsync builds it (options.c server_options). */
export interface RsyncServerArgs {
  /** The target sends files (`--sender`): a download. */
  sender: boolean;
  /** The short option letters (before `e`). */
  flags: string;
  /** The client's capability letters after `e.` (i: incremental recursion, v: varint flags, …). */
  info: string;
  long: Map<string, string>;
  /** Operands after `.`: the destination (upload) or the sources (download). */
  paths: string[];
}

export function parseRsyncServer(command: string): RsyncServerArgs | undefined {
  const cmds = splitCommands(command);
  if (cmds.length !== 1 || cmds[0]!.wrappers.length || cmds[0]!.dynamic) return undefined;
  const argv = cmds[0]!.argv;
  if (argv[0]?.replace(/^.*\//, '') !== 'rsync' || argv[1] !== '--server') return undefined;
  const out: RsyncServerArgs = { sender: false, flags: '', info: '', long: new Map(), paths: [] };
  let i = 2;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '.') break;
    if (a === '--sender') out.sender = true;
    else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      out.long.set(eq < 0 ? a.slice(2) : a.slice(2, eq), eq < 0 ? '' : a.slice(eq + 1));
    } else if (a.startsWith('-') && !out.flags) {
      const e = a.indexOf('e', 1);
      out.flags = e < 0 ? a.slice(1) : a.slice(1, e);
      if (e >= 0) out.info = a.slice(e + 1).replace(/^[0-9.]*\./, '').replace(/^\./, '');
    } else if (a.startsWith('-B')) continue;
  }
  out.paths = argv.slice(i + 1);
  return out;
}

/** What the file list's layout depends on (setup_protocol and the options). */
export interface FlistOptions {
  protocol: number;
  varintFlags: boolean;
  incRecurse: boolean;
  id0Names: boolean;
  links: boolean;
  hardLinks: boolean;
  uid: boolean;
  gid: boolean;
  devices: boolean;
  specials: boolean;
  atimes: boolean;
  crtimes: boolean;
  checksum: boolean;
  numericIds: boolean;
  /** Length of the whole-file checksum in a `-c` file list. */
  fileSumLen: number;
}

export interface FlistEntry {
  name: string;
  /** The name's bytes split at the last slash, for sorting. */
  dir: Buffer | undefined;
  base: Buffer;
  mode: number;
  size: number;
}

const S_IFMT = 0o170000;
export const isDir = (m: number) => (m & S_IFMT) === 0o040000;
export const isReg = (m: number) => (m & S_IFMT) === 0o100000;
const isLnk = (m: number) => (m & S_IFMT) === 0o120000;
const isDevice = (m: number) => (m & S_IFMT) === 0o020000 || (m & S_IFMT) === 0o060000;
const isSpecial = (m: number) => (m & S_IFMT) === 0o010000 || (m & S_IFMT) === 0o140000;
const KNOWN_TYPES = new Set([0o040000, 0o100000, 0o120000, 0o020000, 0o060000, 0o010000, 0o140000]);

const X = {
  SAME_MODE: 1 << 1, EXTENDED: 1 << 2, SAME_UID: 1 << 3, SAME_GID: 1 << 4, SAME_NAME: 1 << 5, LONG_NAME: 1 << 6, SAME_TIME: 1 << 7,
  SAME_RDEV_MAJOR: 1 << 8, HLINKED: 1 << 9, USER_NAME: 1 << 10, GROUP_NAME: 1 << 11, HLINK_FIRST: 1 << 12, IO_ERROR_END: 1 << 12,
  MOD_NSEC: 1 << 13, SAME_ATIME: 1 << 14, CRTIME_EQ_MTIME: 1 << 17,
};

/** The values recv_file_entry keeps between entries (the `static`s), one per direction. */
export class FlistReader {
  private lastName = Buffer.alloc(0);
  private mode = 0;
  /** Every entry so far by its index, for hard links to an earlier one. */
  constructor(private readonly o: FlistOptions) {}

  /** One segment: entries until the end marker, sorted as rsync sorts them. */
  *segment(ndxStart: number, all: Map<number, FlistEntry>): Generator<Step, FlistEntry[], Buffer | undefined> {
    const got: FlistEntry[] = [];
    for (;;) {
      let flags: number;
      if (this.o.varintFlags) {
        flags = yield* varint();
        if (flags === 0) {
          yield* varint(); // io_error
          break;
        }
      } else {
        flags = yield* byte();
        if (flags === 0) break;
        if (flags & X.EXTENDED) flags |= (yield* byte()) << 8;
        if (flags === (X.EXTENDED | X.IO_ERROR_END)) {
          yield* varint();
          break;
        }
      }
      got.push(yield* this.entry(flags, ndxStart, got));
      if (got.length > 10_000_000) throw new RsyncWireError('file list too long');
    }
    if (!this.o.incRecurse) yield* this.idLists();
    const sorted = sortFlist(got);
    sorted.forEach((e, i) => all.set(ndxStart + i, e));
    return sorted;
  }

  private *entry(flags: number, ndxStart: number, got: FlistEntry[]): Generator<Step, FlistEntry, Buffer | undefined> {
    const o = this.o;
    const l1 = flags & X.SAME_NAME ? yield* byte() : 0;
    const l2 = flags & X.LONG_NAME ? yield* varint() : yield* byte();
    if (l1 > this.lastName.length || l2 < 0 || l1 + l2 >= 4096) throw new RsyncWireError('file name length out of range');
    const nameBytes = Buffer.concat([this.lastName.subarray(0, l1), yield* bytes(l2)]);
    this.lastName = nameBytes;
    const slash = nameBytes.lastIndexOf(0x2f);
    const named = { name: nameBytes.toString('utf8'), dir: slash < 0 ? undefined : nameBytes.subarray(0, slash), base: slash < 0 ? nameBytes : nameBytes.subarray(slash + 1) };

    if (o.hardLinks && (flags & X.HLINKED) && !(flags & X.HLINK_FIRST)) {
      const first = yield* varint();
      if (first < 0 || first >= ndxStart + got.length) throw new RsyncWireError('hard link to an unknown entry');
      if (first >= ndxStart) {
        // Same segment: everything is copied from the first link, nothing more is sent.
        const f = got[first - ndxStart]!;
        this.mode = f.mode;
        return { ...named, mode: f.mode, size: f.size };
      }
    }
    let size = yield* varlong(3);
    if (!(flags & X.SAME_TIME)) yield* varlong(4);
    if (flags & X.MOD_NSEC) yield* varint();
    if (o.crtimes && !(flags & X.CRTIME_EQ_MTIME)) yield* varlong(4);
    if (!(flags & X.SAME_MODE)) this.mode = (yield* int32()) >>> 0;
    const mode = this.mode;
    if (!KNOWN_TYPES.has(mode & S_IFMT)) throw new RsyncWireError(`file mode ${mode.toString(8)} not understood`);
    if (o.atimes && !isDir(mode) && !(flags & X.SAME_ATIME)) yield* varlong(4);
    if (o.uid && !(flags & X.SAME_UID)) {
      yield* varint();
      if (flags & X.USER_NAME) yield* bytes(yield* byte());
    }
    if (o.gid && !(flags & X.SAME_GID)) {
      yield* varint();
      if (flags & X.GROUP_NAME) yield* bytes(yield* byte());
    }
    if ((o.devices && isDevice(mode)) || (o.specials && isSpecial(mode) && o.protocol < 31)) {
      if (!(flags & X.SAME_RDEV_MAJOR)) yield* varint();
      yield* varint();
      size = 0;
    } else if (isDevice(mode)) size = 0;
    if (o.links && isLnk(mode)) {
      const n = yield* varint();
      if (n < 0 || n >= 4096) throw new RsyncWireError('symlink target length out of range');
      yield* bytes(n);
    }
    if (o.checksum && isReg(mode)) yield* bytes(o.fileSumLen);
    if (size < 0) throw new RsyncWireError('negative file length');
    return { ...named, mode, size };
  }

  /** recv_id_list: user and group names after a whole (non-incremental) file list. */
  private *idLists(): Generator<Step, void, Buffer | undefined> {
    if (this.o.numericIds) return;
    for (const want of [this.o.uid, this.o.gid]) {
      if (!want) continue;
      while ((yield* varint()) !== 0) yield* bytes(yield* byte());
      if (this.o.id0Names) yield* bytes(yield* byte());
    }
  }
}

/** Sorted as rsync's fsort (merge sort, stable) with f_name_cmp for protocol ≥ 29. */
export function sortFlist(entries: FlistEntry[]): FlistEntry[] {
  return entries.map((e, i) => ({ e, i })).sort((a, b) => fNameCmp(a.e, b.e) || a.i - b.i).map((x) => x.e);
}

const SLASH = Buffer.from('/');
const EMPTY = Buffer.alloc(0);

/**
 * f_name_cmp (flist.c) for protocol ≥ 29: like strcmp on "dir/base", except that a directory
 * compares with a trailing slash, a directory sorts after any non-directory at the same depth,
 * and "." sorts first.
 */
export function fNameCmp(f1: FlistEntry, f2: FlistEntry): number {
  type St = { c: Buffer; i: number; state: 'dir' | 'slash' | 'base' | 'trailing'; type: 'path' | 'item'; f: FlistEntry };
  const start = (f: FlistEntry, sameDir: boolean): St => {
    if (!f.dir || sameDir) {
      const s: St = { c: f.base, i: 0, state: 'base', type: isDir(f.mode) ? 'path' : 'item', f };
      if (s.type === 'path' && f.base.length === 1 && f.base[0] === 0x2e) Object.assign(s, { type: 'item', state: 'trailing', c: EMPTY });
      return s;
    }
    return { c: f.dir, i: 0, state: 'dir', type: 'path', f };
  };
  const sameDir = !!f1.dir && !!f2.dir && f1.dir.equals(f2.dir);
  const a = start(f1, sameDir);
  const b = start(f2, sameDir);
  if (a.type !== b.type) return a.type === 'path' ? 1 : -1;
  const toBase = (s: St) => {
    s.type = isDir(s.f.mode) ? 'path' : 'item';
    s.c = s.f.base;
    s.i = 0;
    if (s.type === 'path' && s.c.length === 1 && s.c[0] === 0x2e) Object.assign(s, { type: 'item', state: 'trailing', c: EMPTY });
    else s.state = 'base';
  };
  for (;;) {
    if (a.i >= a.c.length) {
      if (a.state === 'dir') Object.assign(a, { state: 'slash', c: SLASH, i: 0 });
      else if (a.state === 'slash') toBase(a);
      else if (a.state === 'base' && a.type === 'path') Object.assign(a, { state: 'trailing', c: SLASH, i: 0 });
      else Object.assign(a, { state: 'trailing', type: 'item' });
      if (b.i < b.c.length && a.type !== b.type) return a.type === 'path' ? 1 : -1;
    }
    if (b.i >= b.c.length) {
      if (b.state === 'dir') Object.assign(b, { state: 'slash', c: SLASH, i: 0 });
      else if (b.state === 'slash') toBase(b);
      else if (b.state === 'base' && b.type === 'path') Object.assign(b, { state: 'trailing', c: SLASH, i: 0 });
      else {
        Object.assign(b, { state: 'trailing' });
        if (a.i >= a.c.length) return 0;
        b.type = 'item';
      }
      if (a.type !== b.type) return a.type === 'path' ? 1 : -1;
    }
    const ca = a.i < a.c.length ? a.c[a.i]! : 0;
    const cb = b.i < b.c.length ? b.c[b.i]! : 0;
    a.i++;
    b.i++;
    if (ca !== cb) return ca - cb;
  }
}
