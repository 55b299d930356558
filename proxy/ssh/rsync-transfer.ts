import { dirname, posix } from 'node:path';
import { FileContent, type ContentSink, type FileDigest } from './file-content.js';
import { FlistReader, isReg, parseRsyncServer, type FlistEntry, type FlistOptions, type RsyncServerArgs } from './rsync-flist.js';
import { byte, bytes, int32, MPLEX, NdxReader, peek, Pull, RsyncWireError, shortint, varint, vstring, type Decoder, type Step } from './rsync-wire.js';

/** Whole-file checksum lengths by name (checksum.c csum_len_for_type). */
const SUM_LEN: Record<string, number> = { xxh128: 16, xxh3: 8, xxh64: 8, xxhash: 8, md5: 16, md4: 16, sha1: 20, sha256: 32, sha512: 64, none: 1 };
const CF = { INC_RECURSE: 1, VARINT_FLIST_FLAGS: 1 << 7, ID0_NAMES: 1 << 8 };
const ITEM = { REPORT_XATTR: 1 << 8, BASIS_TYPE_FOLLOWS: 1 << 11, XNAME_FOLLOWS: 1 << 12, TRANSFER: 1 << 15 };
const NDX_DONE = -1;
const NDX_FLIST_EOF = -2;
const NDX_FLIST_OFFSET = -101;
/** A literal run is at most CHUNK_SIZE (32 KiB) in rsync; allow more, never unbounded. */
const LITERAL_MAX = 1024 * 1024;

export type RsyncFile = { path: string; name: string; direction: 'upload' | 'download' };

/** The options this decoder cannot follow: they add fields to the stream it does not read. */
function unsupported(a: RsyncServerArgs): string | undefined {
  if (/[AX]/.test(a.flags)) return 'ACLs or extended attributes (-A/-X)';
  if (a.long.has('iconv')) return 'file name conversion (--iconv)';
  if (a.long.has('files-from')) return '--files-from';
  if (a.long.has('protocol')) return 'a forced --protocol';
  if (a.flags.includes('n')) return 'a dry run (-n): no file content moves';
  return undefined;
}

/**
 * Reads an `rsync --server` exec channel both ways without changing it (protocol 30–32, rsync
 * 3.x) and reports each file the sending side transfers: path, direction, size and SHA-256 of
 * the content as it passed. The sending side is the target for a download (`--sender`), the
 * client for an upload. A file sent whole (new at the receiver, `-W`) is hashed; one sent as a
 * delta against the receiver's copy, or compressed (`-z`), is reported with its size and why no
 * hash is given. Any doubt stops the decoding for the channel, reported once through onBroken;
 * the relay and the raw recording never depend on it.
 */
export class RsyncTransfer {
  private readonly client: Pull;
  private readonly target: Pull;
  private clientVersion: number | undefined;
  private serverVersion: number | undefined;
  private compat: number | undefined;
  private readonly lists: { client: { sums?: string[]; zips?: string[] }; server: { sums?: string[]; zips?: string[] } } = { client: {}, server: {} };
  broken = false;
  private singleFile = false;
  private open: { c: FileContent; file: RsyncFile; size: number } | undefined;

  constructor(
    private args: RsyncServerArgs,
    private readonly onFile: (f: RsyncFile, digest: FileDigest & { stored?: Promise<void> }) => void,
    private readonly onBroken: (why: string) => void,
    private readonly sink?: () => ContentSink | undefined,
  ) {
    this.client = new Pull(this.clientSide());
    this.target = new Pull(this.targetSide());
    const why = unsupported(args);
    if (why) this.fail(`rsync with ${why}`);
  }

  static forCommand(command: string, ...rest: [RsyncTransfer['onFile'], RsyncTransfer['onBroken'], RsyncTransfer['sink']?]): RsyncTransfer | undefined {
    const args = parseRsyncServer(command);
    return args ? new RsyncTransfer(args, ...rest) : undefined;
  }

  fromClient(chunk: Buffer): void {
    this.feed(this.client, chunk);
  }

  fromTarget(chunk: Buffer): void {
    this.feed(this.target, chunk);
  }

  /** The channel ended: a file cut short is reported with what passed (no SHA-256). */
  end(): void {
    const o = this.open;
    this.open = undefined;
    if (!o) return;
    o.c.cut('the transfer stopped before the end of the file');
    this.onFile(o.file, { ...o.c.finish(), size: o.size });
  }

  private feed(p: Pull, chunk: Buffer): void {
    if (this.broken) return;
    try {
      p.feed(chunk);
    } catch (err) {
      this.fail(err instanceof RsyncWireError ? err.message : `decoder error: ${(err as Error).message}`);
    }
  }

  private fail(why: string): void {
    if (this.broken) return;
    this.broken = true;
    this.end();
    this.onBroken(`rsync stream not followed (${why}); rsync files no longer recorded on this channel, the raw recording is complete`);
  }

  private get protocol(): number {
    return Math.min(this.clientVersion ?? 0, this.serverVersion ?? 0);
  }

  private get checksumChoice(): string | undefined {
    return this.args.long.get('checksum-choice') ?? this.args.long.get('cc');
  }

  private get compressChoice(): string | undefined {
    if (this.args.long.has('new-compress')) return 'zlibx';
    if (this.args.long.has('old-compress')) return 'zlib';
    return this.args.long.get('compress-choice') ?? this.args.long.get('zc');
  }

  private get compressing(): boolean {
    const c = this.compressChoice;
    return c ? c !== 'none' : this.args.flags.includes('z');
  }

  /** setup_protocol's version exchange and negotiation strings (before multiplexing). */
  private *prelude(side: 'client' | 'server'): Generator<Step, void, Buffer | undefined> {
    const v = yield* int32();
    if (side === 'client') this.clientVersion = v;
    else this.serverVersion = v;
    if (v < 30 || v > 40) throw new RsyncWireError(`${side} speaks protocol ${v}; only 30 and later are decoded`);
    if (side === 'server') this.compat = yield* varint();
    // The client's next bytes come after it has read the server's compat flags.
    else yield* peek(1);
    if (this.compat === undefined) throw new RsyncWireError('client negotiation before the server compat flags');
    if (this.compat & CF.VARINT_FLIST_FLAGS) {
      if (!this.checksumChoice) this.lists[side].sums = (yield* vstring()).toString('latin1').split(/[ ,]+/).filter(Boolean);
      if (this.compressing && !this.compressChoice) this.lists[side].zips = (yield* vstring()).toString('latin1').split(/[ ,]+/).filter(Boolean);
    }
    if (side === 'server') yield* int32(); // checksum seed
    yield MPLEX;
  }

  private *clientSide(): Decoder {
    if (this.args.flags.includes('s')) {
      // --secluded-args: the rest of the command line comes first on stdin, NUL-separated.
      const extra: string[] = [];
      for (;;) {
        const s = yield* cstring();
        if (!s) break;
        extra.push(s);
        if (extra.length > 10_000) throw new RsyncWireError('too many secluded arguments');
      }
      const again = parseRsyncServer(['rsync', '--server', ...(this.args.sender ? ['--sender'] : []), `-${this.args.flags}e.${this.args.info}`, ...extra.slice(1)].map(quote).join(' '));
      if (!again) throw new RsyncWireError('secluded arguments not understood');
      this.args = again;
      const why = unsupported(again);
      if (why) throw new RsyncWireError(`rsync with ${why}`);
    }
    yield* this.prelude('client');
    if (this.args.sender) return;
    // An upload: the client is the sender. A filter list first when the receiver wants it.
    const deleting = [...this.args.long.keys()].some((k) => (k.startsWith('delete') && k !== 'delete-missing-args') || k === 'del');
    if (deleting || this.args.flags.includes('m')) for (let len = yield* int32(); len !== 0; len = yield* int32()) yield* bytes(len);
    yield* this.senderBody('upload');
  }

  private *targetSide(): Decoder {
    yield* this.prelude('server');
    if (this.args.sender) yield* this.senderBody('download');
  }

  /** send_file_list then send_files, as the receiving side reads them. */
  private *senderBody(direction: 'upload' | 'download'): Decoder {
    // The sender's first multiplexed bytes follow its reading of the peer's lists and the seed.
    yield* peek(1);
    const compat = this.compat!;
    const f = this.args.flags;
    const inc = !!(compat & CF.INC_RECURSE);
    const sumName = this.sumName(direction);
    const xferLen = SUM_LEN[sumName.xfer];
    const fileLen = SUM_LEN[sumName.file];
    if (xferLen === undefined || fileLen === undefined) throw new RsyncWireError(`checksum ${sumName.xfer} not known`);
    const o: FlistOptions = {
      protocol: this.protocol, varintFlags: !!(compat & CF.VARINT_FLIST_FLAGS), incRecurse: inc, id0Names: !!(compat & CF.ID0_NAMES),
      links: f.includes('l'), hardLinks: f.includes('H'), uid: f.includes('o'), gid: f.includes('g'), devices: f.includes('D'),
      specials: f.includes('D') && !this.args.long.has('no-specials') || this.args.long.has('specials'), atimes: f.includes('U'), crtimes: f.includes('N'),
      checksum: f.includes('c'), numericIds: this.args.long.has('numeric-ids'), fileSumLen: fileLen,
    };
    const zip = this.compressing ? this.zipName(direction) : undefined;
    const flist = new FlistReader(o);
    const all = new Map<number, FlistEntry>();
    const ndx = new NdxReader();
    let start = inc ? 1 : 0;
    const first = yield* flist.segment(start, all);
    let used = first.length;
    this.singleFile = first.length === 1 && isReg(first[0]!.mode);
    let segments = 1;
    let total = used;
    let flistEof = !inc;
    let done = 0;
    for (;;) {
      const i = yield* ndx.read();
      if (i === NDX_DONE) {
        // One per file list freed but the last, one per phase change, one at the end.
        if (flistEof && ++done >= segments + 2) return;
        if (!flistEof) done++;
        continue;
      }
      if (i === NDX_FLIST_EOF) {
        if (!inc || flistEof) throw new RsyncWireError('end of file lists twice');
        flistEof = true;
        continue;
      }
      if (i <= NDX_FLIST_OFFSET) {
        if (!inc || flistEof) throw new RsyncWireError('a file list after the last');
        start = start + used + 1;
        used = (yield* flist.segment(start, all)).length;
        segments++;
        total += used;
        if (total > 50_000_000) throw new RsyncWireError('too many files');
        continue;
      }
      if (i < 0) throw new RsyncWireError(`file index ${i} not understood`);
      const iflags = yield* shortint();
      if (iflags & ITEM.BASIS_TYPE_FOLLOWS) yield* byte();
      if (iflags & ITEM.XNAME_FOLLOWS) yield* vstring();
      if (!(iflags & ITEM.TRANSFER)) continue;
      const entry = all.get(i);
      if (!entry || !isReg(entry.mode)) throw new RsyncWireError(`transfer of index ${i}, not a regular file in the list`);
      yield* this.file(entry, direction, zip);
      yield* bytes(xferLen);
    }
  }

  /** One file's sum head and token stream (match.c / token.c). */
  private *file(entry: FlistEntry, direction: 'upload' | 'download', zip: string | undefined): Generator<Step, void, Buffer | undefined> {
    const count = yield* int32();
    const blength = yield* int32();
    const s2length = yield* int32();
    const remainder = yield* int32();
    if (count < 0 || blength < 0 || blength > 1 << 17 || s2length < 0 || s2length > 16 || remainder < 0 || remainder > blength) throw new RsyncWireError('block checksum header out of range');
    const file: RsyncFile = { path: this.pathOf(entry), name: entry.name, direction };
    const c = new FileContent(zip ? undefined : this.sink?.());
    this.open = { c, file, size: entry.size };
    let literal = 0;
    let matched = 0;
    const take = (b: Buffer) => {
      c.write(literal, b);
      literal += b.length;
    };
    if (zip) {
      c.cut(`compressed on the wire with ${zip} (-z); the proxy does not decompress rsync's stream`);
      for (;;) {
        const flag = yield* byte();
        if ((flag & 0xc0) === 0x40) {
          const n = ((flag & 0x3f) << 8) + (yield* byte());
          yield { pass: n, to: () => undefined };
        } else if (flag === 0) break;
        else if (flag & 0x80) {
          if (flag & 0x40) matched += (yield* shortint()) + 1;
          else matched++;
        } else if (flag === 0x20 || flag === 0x21) {
          yield* int32();
          matched += flag === 0x21 ? (yield* shortint()) + 1 : 1;
        } else throw new RsyncWireError(`compressed token flag ${flag} not understood`);
      }
    } else {
      for (;;) {
        const t = yield* int32();
        if (t === 0) break;
        if (t > 0) {
          if (t > LITERAL_MAX) throw new RsyncWireError(`literal run of ${t} bytes`);
          yield { pass: t, to: take };
        } else {
          if (-(t + 1) >= count) throw new RsyncWireError('match of a block the receiver never offered');
          matched++;
        }
      }
      if (matched) c.cut(`sent as a delta against the receiver's copy (${matched} of its blocks reused, ${literal} bytes literal); the proxy never saw the reused blocks`);
      else if (literal !== entry.size) c.cut(`only ${literal} of ${entry.size} bytes passed (append or partial transfer)`);
    }
    this.open = undefined;
    this.onFile(file, { ...c.finish(), size: entry.size });
  }

  /** The checksum the sender writes after each file: fixed by --checksum-choice or the sender's first choice the peer also has. */
  private sumName(direction: 'upload' | 'download'): { xfer: string; file: string } {
    const choice = this.checksumChoice;
    if (choice) {
      const [xfer, file] = choice.split(',');
      return { xfer: xfer!, file: file ?? xfer! };
    }
    const n = this.negotiated(direction, 'sums') ?? (this.compat! & CF.VARINT_FLIST_FLAGS ? undefined : 'md5');
    if (!n) throw new RsyncWireError('no checksum in common');
    return { xfer: n, file: n };
  }

  private zipName(direction: 'upload' | 'download'): string {
    return this.compressChoice ?? this.negotiated(direction, 'zips') ?? 'zlib';
  }

  private negotiated(direction: 'upload' | 'download', what: 'sums' | 'zips'): string | undefined {
    const mine = direction === 'upload' ? this.lists.client[what] : this.lists.server[what];
    const theirs = direction === 'upload' ? this.lists.server[what] : this.lists.client[what];
    if (!mine || !theirs) return undefined;
    return mine.find((n) => theirs.includes(n));
  }

  /** The file's path on the target, as near as the command line tells it (the list's own name is kept beside it). */
  private pathOf(e: FlistEntry): string {
    const p = this.args.paths;
    if (this.args.flags.includes('R') || p.length !== 1) return e.name;
    const arg = p[0]!;
    if (this.args.sender) return arg.endsWith('/') ? posix.join(arg, e.name) : posix.join(dirname(arg), e.name);
    // `rsync FILE host:NAME` writes FILE as NAME unless NAME is a directory: one plain file in the list.
    if (!arg.endsWith('/') && this.singleFile) return arg;
    return posix.join(arg, e.name);
  }
}

function* cstring(): Generator<Step, string, Buffer | undefined> {
  const parts: number[] = [];
  for (let b = yield* byte(); b !== 0; b = yield* byte()) {
    parts.push(b);
    if (parts.length > 4096) throw new RsyncWireError('argument too long');
  }
  return Buffer.from(parts).toString('utf8');
}

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
