/**
 * SFTP v3 packets cut out of a channel's byte stream, without copying them: each packet is the
 * views of the chunks it came in (sftp-audit.ts reads its fields and hashes WRITE and DATA
 * payloads piece by piece). https://datatracker.ietf.org/doc/html/draft-ietf-secsh-filexfer-02
 *
 *   uint32 length | byte type | uint32 request-id | type-specific fields
 */

const PACKET_MAX = 4 * 1024 * 1024;

/** One packet (its body after the length field) as views of the chunks it arrived in. */
export class SftpPacket {
  constructor(readonly pieces: Buffer[], readonly length: number) {}

  get type(): number {
    return this.pieces[0]![0]!;
  }

  /** The whole body in one Buffer: a view when it came in one chunk, else joined (one copy). */
  whole(): Buffer {
    return this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.length);
  }

  /** The first min(n, length) bytes in one Buffer: a view when the first chunk holds them. */
  prefix(n: number): Buffer {
    const first = this.pieces[0]!;
    const want = Math.min(n, this.length);
    if (first.length >= want) return first.subarray(0, want);
    return Buffer.concat(this.pieces, this.length).subarray(0, want);
  }

  /** Views of bytes [from, to) of the body, in order, across the chunks. */
  slices(from: number, to: number): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    for (const p of this.pieces) {
      const end = at + p.length;
      if (end > from && at < to) out.push(p.subarray(Math.max(0, from - at), Math.min(p.length, to - at)));
      at = end;
      if (at >= to) break;
    }
    return out;
  }
}

/** Splits a byte stream into packets. A zero or oversized length stops it (`broken`). */
export class SftpPacketSplitter {
  private pieces: Buffer[] = [];
  private lenBuf = Buffer.alloc(0);
  private remaining = -1;
  private total = 0;
  broken = false;

  constructor(private readonly onPacket: (packet: SftpPacket) => void) {}

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
      this.pieces.push(chunk.subarray(off, off + take));
      off += take;
      this.remaining -= take;
      if (this.remaining === 0) {
        const packet = new SftpPacket(this.pieces, this.total);
        this.pieces = [];
        this.remaining = -1;
        this.onPacket(packet);
      }
    }
  }
}

/** Bounds-checked reader over a packet's fields. */
export class Reader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}
  /** Bytes read so far. */
  get offset(): number {
    return this.off;
  }
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
