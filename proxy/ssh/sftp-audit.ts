/**
 * Reads the SFTP v3 packets going through a subsystem channel, without changing them, and
 * reports file operations (path, op, bytes) for the recording.
 * https://datatracker.ietf.org/doc/html/draft-ietf-secsh-filexfer-02
 *
 *   uint32 length | byte type | uint32 request-id | type-specific fields
 *
 * Packets are read where they lie in the channel's chunks (sftp-packets.ts): WRITE data and
 * DATA replies are hashed per file (file-content.ts) piece by piece, never joined into one
 * Buffer. Each transferred file is reported with its size and SHA-256, and its content goes to
 * a ContentSink when the target keeps contents. A malformed or oversized
 * packet stops the parsing (reported once) but never the relay.
 */

import { FileContent, type ContentSink, type FileDigest } from './file-content.js';
import { Reader, SftpPacket, SftpPacketSplitter } from './sftp-packets.js';

export { SftpPacketSplitter } from './sftp-packets.js';

const enum Fxp {
  Init = 1, Version = 2, Open = 3, Close = 4, Read = 5, Write = 6, Setstat = 9, Opendir = 11,
  Remove = 13, Mkdir = 14, Rmdir = 15, Rename = 18, Symlink = 20,
  Status = 101, Handle = 102, Data = 103,
}

const FXF_WRITE = 0x02;
/** A WRITE's fields before its data (type, id, handle of at most 256 bytes, offset, length) fit in this. */
const FIELDS_MAX = 1024;

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
    this.fromClient = new SftpPacketSplitter((p) => this.guard(() => (p.type === Fxp.Write ? this.write(p) : this.request(p.whole()))));
    this.fromServer = new SftpPacketSplitter((p) => this.guard(() => (p.type === Fxp.Data ? this.data(p) : this.reply(p.whole()))));
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
    } else if (type === Fxp.Status) {
      this.opens.delete(id);
      this.reads.delete(id);
    }
  }

  /** WRITE: id, handle, offset, then the data, hashed where it lies. */
  private write(p: SftpPacket): void {
    const { key, offset, len, start } = this.fields(p, (r) => {
      r.byte();
      r.u32();
      return { key: r.string().toString('hex'), offset: r.u64(), len: r.u32(), start: r.offset };
    });
    const data = this.payload(p, start, len);
    const f = this.files.get(key);
    if (!f) return;
    f.written += len;
    const c = this.contentOf(f, 'upload');
    let at = offset;
    for (const piece of data) {
      c.write(at, piece);
      at += piece.length;
    }
  }

  /** DATA reply to a READ: id, then the data, hashed where it lies. */
  private data(p: SftpPacket): void {
    const { id, len, start } = this.fields(p, (r) => {
      r.byte();
      return { id: r.u32(), len: r.u32(), start: r.offset };
    });
    const data = this.payload(p, start, len);
    const req = this.reads.get(id);
    this.reads.delete(id);
    const f = req ? this.files.get(req.key) : undefined;
    if (!f) return;
    f.read += len;
    const c = this.contentOf(f, 'download');
    let at = req!.offset;
    for (const piece of data) {
      c.write(at, piece);
      at += piece.length;
    }
  }

  /**
   * Reads the fields before a payload from the packet's first FIELDS_MAX bytes (a view of the
   * first chunk when it holds them); fields longer than that (a handle past the 256 bytes the
   * draft allows) are read from the whole packet.
   */
  private fields<T>(p: SftpPacket, read: (r: Reader) => T): T {
    if (p.length <= FIELDS_MAX) return read(new Reader(p.prefix(FIELDS_MAX)));
    try {
      return read(new Reader(p.prefix(FIELDS_MAX)));
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      return read(new Reader(p.whole()));
    }
  }

  /** The payload's pieces; a length past the packet's end is malformed. */
  private payload(p: SftpPacket, start: number, len: number): Buffer[] {
    if (start + len > p.length) throw new RangeError('short packet');
    return p.slices(start, start + len);
  }

  /** The file's content tracker, made at its first byte (a handle that both reads and writes keeps the first direction). */
  private contentOf(f: OpenFile, direction: 'upload' | 'download'): FileContent {
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
