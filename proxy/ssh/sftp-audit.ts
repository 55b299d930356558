/**
 * Reads the SFTP v3 packets going through a subsystem channel, without changing them, and
 * reports file operations (path, op, bytes) for the recording.
 * https://datatracker.ietf.org/doc/html/draft-ietf-secsh-filexfer-02
 *
 *   uint32 length | byte type | uint32 request-id | type-specific fields
 *
 * Packets are kept whole (one copy of each) so WRITE data and DATA replies can be hashed per
 * file (file-content.ts): each transferred file is reported with its size and SHA-256, and its
 * content goes to a ContentSink when the target keeps contents. A malformed or oversized
 * packet stops the parsing (reported once) but never the relay.
 */

const PACKET_MAX = 4 * 1024 * 1024;

import { FileContent, type ContentSink, type FileDigest } from './file-content.js';

const enum Fxp {
  Init = 1, Version = 2, Open = 3, Close = 4, Read = 5, Write = 6, Setstat = 9, Opendir = 11,
  Remove = 13, Mkdir = 14, Rmdir = 15, Rename = 18, Symlink = 20,
  Status = 101, Handle = 102, Data = 103,
}

const FXF_WRITE = 0x02;

/** Splits a byte stream into (type, head, length) packets. */
export class SftpPacketSplitter {
  private head: Buffer[] = [];
  private lenBuf = Buffer.alloc(0);
  private remaining = -1;
  private total = 0;
  broken = false;

  constructor(private readonly onPacket: (head: Buffer, length: number) => void) {}

  feed(chunk: Buffer): void {
    let off = 0;
    while (!this.broken && off < chunk.length) {
      if (this.remaining < 0) {
        const need = 4 - this.lenBuf.length;
        this.lenBuf = Buffer.concat([this.lenBuf, chunk.subarray(off, off + need)]);
        off += Math.min(need, chunk.length - off);
        if (this.lenBuf.length < 4) return;
        this.total = this.remaining = this.lenBuf.readUInt32BE(0);
        this.lenBuf = Buffer.alloc(0);
        if (this.total === 0 || this.total > PACKET_MAX) {
          this.broken = true;
          return;
        }
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - off);
      this.head.push(chunk.subarray(off, off + take));
      off += take;
      this.remaining -= take;
      if (this.remaining === 0) {
        const head = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
        this.head = [];
        this.remaining = -1;
        this.onPacket(head, this.total);
      }
    }
  }
}

/** Bounds-checked reader over a packet head. */
class Reader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}
  byte(): number {
    if (this.off + 1 > this.buf.length) throw new RangeError('short packet');
    return this.buf[this.off++]!;
  }
  u32(): number {
    if (this.off + 4 > this.buf.length) throw new RangeError('short packet');
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  string(): Buffer {
    const len = this.u32();
    if (this.off + len > this.buf.length) throw new RangeError('short packet');
    const v = this.buf.subarray(this.off, this.off + len);
    this.off += len;
    return v;
  }
  u64(): number {
    const hi = this.u32();
    return hi * 2 ** 32 + this.u32();
  }
  skip(n: number): void {
    if (this.off + n > this.buf.length) throw new RangeError('short packet');
    this.off += n;
  }
}

interface OpenFile { path: string; write: boolean; read: number; written: number; content: FileContent | undefined; sink: ((direction: 'upload' | 'download') => ContentSink | undefined) }

export interface SftpOp {
  op: string;
  path: string;
  bytes?: number;
  to?: string;
  /** Uploads and downloads: the digest of the content that passed (file-content.ts). */
  digest?: FileDigest & { stored?: Promise<void> };
}

export interface SftpAuditOptions {
  /** A sink for a file's content when the target keeps transfer contents; absent = hash only. */
  content?: (path: string, direction: 'upload' | 'download') => ContentSink | undefined;
}

/**
 * Pairs requests with replies (OPEN → HANDLE, READ → DATA) to report whole-file transfers at
 * CLOSE and path operations as they are asked.
 */
export class SftpAudit {
  private readonly opens = new Map<number, { path: string; write: boolean }>();
  private readonly reads = new Map<number, { key: string; offset: number }>();
  private readonly files = new Map<string, OpenFile>();
  private reportedBroken = false;
  readonly fromClient: SftpPacketSplitter;
  readonly fromServer: SftpPacketSplitter;

  constructor(private readonly onOp: (op: SftpOp) => void, private readonly onBroken: (why: string) => void, private readonly opts: SftpAuditOptions = {}) {
    this.fromClient = new SftpPacketSplitter((h) => this.guard(() => this.request(h)));
    this.fromServer = new SftpPacketSplitter((h) => this.guard(() => this.reply(h)));
  }

  client(chunk: Buffer): void {
    this.fromClient.feed(chunk);
    this.checkBroken();
  }

  server(chunk: Buffer): void {
    this.fromServer.feed(chunk);
    this.checkBroken();
  }

  /** Reports files still open when the channel ends. */
  end(): void {
    for (const f of this.files.values()) this.report(f);
    this.files.clear();
  }

  private checkBroken(): void {
    if (!this.reportedBroken && (this.fromClient.broken || this.fromServer.broken)) {
      this.reportedBroken = true;
      this.onBroken('sftp stream not understood; file operations no longer recorded');
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch {
      this.fromClient.broken = true;
    }
  }

  private request(head: Buffer): void {
    const r = new Reader(head);
    const type = r.byte();
    if (type === Fxp.Init) return;
    const id = r.u32();
    const str = () => r.string().toString('utf8');
    switch (type) {
      case Fxp.Open: {
        const path = str();
        const pflags = r.u32();
        this.opens.set(id, { path, write: (pflags & FXF_WRITE) !== 0 });
        return;
      }
      case Fxp.Read: {
        const key = r.string().toString('hex');
        this.reads.set(id, { key, offset: r.u64() });
        return;
      }
      case Fxp.Write: {
        const f = this.files.get(r.string().toString('hex'));
        const offset = r.u64();
        const data = r.string();
        if (f) {
          f.written += data.length;
          this.contentOf(f, 'upload')?.write(offset, data);
        }
        return;
      }
      case Fxp.Close: {
        const key = r.string().toString('hex');
        const f = this.files.get(key);
        if (f) {
          this.files.delete(key);
          this.report(f);
        }
        return;
      }
      case Fxp.Remove: return this.onOp({ op: 'remove', path: str() });
      case Fxp.Mkdir: return this.onOp({ op: 'mkdir', path: str() });
      case Fxp.Rmdir: return this.onOp({ op: 'rmdir', path: str() });
      case Fxp.Setstat: return this.onOp({ op: 'setstat', path: str() });
      case Fxp.Opendir: return this.onOp({ op: 'list', path: str() });
      case Fxp.Rename: {
        const path = str();
        return this.onOp({ op: 'rename', path, to: str() });
      }
      case Fxp.Symlink: {
        const path = str();
        return this.onOp({ op: 'symlink', path, to: str() });
      }
      default:
        return;
    }
  }

  private reply(head: Buffer): void {
    const r = new Reader(head);
    const type = r.byte();
    if (type === Fxp.Version) return;
    const id = r.u32();
    if (type === Fxp.Handle) {
      const open = this.opens.get(id);
      if (open) {
        this.opens.delete(id);
        this.files.set(r.string().toString('hex'), { ...open, read: 0, written: 0, content: undefined, sink: (d) => this.opts.content?.(open.path, d) });
      }
    } else if (type === Fxp.Data) {
      const req = this.reads.get(id);
      this.reads.delete(id);
      const f = req ? this.files.get(req.key) : undefined;
      if (f) {
        const data = r.string();
        f.read += data.length;
        this.contentOf(f, 'download')?.write(req!.offset, data);
      }
    } else if (type === Fxp.Status) {
      this.opens.delete(id);
      this.reads.delete(id);
    }
  }

  /** The file's content tracker, made at its first byte (a handle that both reads and writes keeps the first direction). */
  private contentOf(f: OpenFile, direction: 'upload' | 'download'): FileContent | undefined {
    f.content ??= new FileContent(f.sink(direction));
    return f.content;
  }

  private report(f: OpenFile): void {
    const upload = f.written > 0 || (f.write && f.read === 0);
    const digest = (f.content ?? new FileContent()).finish();
    this.onOp({ op: upload ? 'upload' : 'download', path: f.path, bytes: upload ? f.written : f.read, digest });
  }
}

export function describeSftpOp(op: SftpOp): string {
  return `sftp ${op.op} ${op.path}${op.to !== undefined ? ` -> ${op.to}` : ''}${op.bytes !== undefined ? ` (${op.bytes} bytes)` : ''}`;
}
