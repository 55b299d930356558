/**
 * rsync's wire primitives (io.c of rsync 3.x, protocol 30 and later), read from one direction of
 * an SSH channel without changing it. A decoder is a generator that yields what it needs next:
 *
 *   yield need(n)            → the next n bytes (n small: headers, names, checksums)
 *   yield pass(n, onBytes)   → the next n bytes handed over in slices as they arrive (file data)
 *   yield MPLEX              → from here the stream is multiplexed: 4-byte headers
 *                              (tag + MPLEX_BASE) << 24 | length, only MSG_DATA payloads carry
 *                              the protocol; other messages (info, errors, keep-alives) skipped
 *
 * `Pull` feeds chunks in and runs the decoder as far as the bytes go. Anything the decoder does
 * not understand is a `RsyncWireError`; the caller stops decoding that channel (never the relay).
 */

export class RsyncWireError extends Error {}

const MPLEX_BASE = 7;
const MSG_DATA = 0;
/** Longest single `need` (a path is at most 4 KiB in rsync; a vstring at most 32 KiB). */
const NEED_MAX = 64 * 1024;

export type Step = { need: number; peek?: boolean } | { pass: number; to: (b: Buffer) => void } | typeof MPLEX;
export const MPLEX = Symbol('mplex');
export const need = (n: number): Step => {
  if (!Number.isInteger(n) || n < 0 || n > NEED_MAX) throw new RsyncWireError(`a field of ${n} bytes`);
  return { need: n };
};
export const pass = (n: number, to: (b: Buffer) => void): Step => ({ pass: n, to });

export type Decoder = Generator<Step, void, Buffer | undefined>;

/** Runs one decoder over the chunks of one direction. */
export class Pull {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private step: Step | undefined;
  private muxed = false;
  /** Demultiplexer: header bytes gathered, payload bytes left of the current message and whether it is data. */
  private header = Buffer.alloc(4);
  private headerGot = 0;
  private payloadLeft = 0;
  private payloadIsData = false;
  done = false;

  constructor(private readonly decoder: Decoder) {
    this.advance(undefined);
  }

  /** Throws RsyncWireError (or whatever the decoder throws) on bytes it cannot follow. */
  feed(chunk: Buffer): void {
    if (this.done || !chunk.length) return;
    if (this.muxed) this.demux(chunk);
    else this.push(chunk);
    this.run();
  }

  private push(b: Buffer): void {
    if (!b.length) return;
    this.queue.push(b);
    this.queued += b.length;
  }

  private demux(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.payloadLeft > 0) {
        const take = Math.min(this.payloadLeft, chunk.length - off);
        if (this.payloadIsData) this.push(chunk.subarray(off, off + take));
        this.payloadLeft -= take;
        off += take;
        continue;
      }
      const take = Math.min(4 - this.headerGot, chunk.length - off);
      chunk.copy(this.header, this.headerGot, off, off + take);
      this.headerGot += take;
      off += take;
      if (this.headerGot < 4) break;
      this.headerGot = 0;
      const word = this.header.readUInt32LE(0);
      const tag = (word >>> 24) - MPLEX_BASE;
      if (tag < 0) throw new RsyncWireError(`multiplexed header ${word.toString(16)} has no message tag`);
      this.payloadLeft = word & 0xffffff;
      this.payloadIsData = tag === MSG_DATA;
    }
  }

  private run(): void {
    while (!this.done && this.step) {
      const s = this.step;
      if (s === MPLEX) {
        // Bytes already queued past this point were read as plain: demultiplex them now.
        const rest = this.queue.splice(0);
        this.queued = 0;
        this.muxed = true;
        for (const b of rest) this.demux(b);
        this.advance(undefined);
      } else if ('need' in s) {
        if (this.queued < s.need) return;
        this.advance(s.peek ? undefined : this.take(s.need));
      } else {
        while (s.pass > 0 && this.queued > 0) {
          const head = this.queue[0]!;
          const n = Math.min(s.pass, head.length);
          s.to(n === head.length ? head : head.subarray(0, n));
          this.drop(n);
          s.pass -= n;
        }
        if (s.pass > 0) return;
        this.advance(undefined);
      }
    }
  }

  private advance(value: Buffer | undefined): void {
    const r = this.decoder.next(value);
    if (r.done) {
      this.done = true;
      this.step = undefined;
      this.queue.length = 0;
      this.queued = 0;
    } else this.step = r.value;
  }

  private take(n: number): Buffer {
    const head = this.queue[0];
    if (head && head.length >= n) {
      const out = head.subarray(0, n);
      this.drop(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const b = this.queue[0]!;
      const k = Math.min(n - got, b.length);
      b.copy(out, got, 0, k);
      got += k;
      this.drop(k);
    }
    return out;
  }

  private drop(n: number): void {
    this.queued -= n;
    while (n > 0) {
      const b = this.queue[0]!;
      if (b.length <= n) {
        this.queue.shift();
        n -= b.length;
      } else {
        this.queue[0] = b.subarray(n);
        n = 0;
      }
    }
  }
}

/* Readers for the decoders: `const v = yield* int32()`. Each follows rsync's io.c. */

export function* bytes(n: number): Generator<Step, Buffer, Buffer | undefined> {
  if (n === 0) return Buffer.alloc(0);
  return (yield need(n))!;
}

/** Waits until n bytes are there without taking them (what follows may depend on the other direction). */
export function* peek(n: number): Generator<Step, void, Buffer | undefined> {
  yield { need: n, peek: true };
}

export function* byte(): Generator<Step, number, Buffer | undefined> {
  return (yield need(1))![0]!;
}

export function* int32(): Generator<Step, number, Buffer | undefined> {
  return (yield need(4))!.readInt32LE(0);
}

export function* shortint(): Generator<Step, number, Buffer | undefined> {
  return (yield need(2))!.readUInt16LE(0);
}

/** Extra bytes after a varint's first byte, by that byte / 4 (io.c int_byte_extra). */
const EXTRA = [...Array<number>(32).fill(0), ...Array<number>(16).fill(1), 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 6];

/** read_varint: 1–5 bytes, a signed 32-bit value. */
export function* varint(): Generator<Step, number, Buffer | undefined> {
  const ch = yield* byte();
  const extra = EXTRA[ch >> 2]!;
  if (!extra) return ch;
  if (extra > 4) throw new RsyncWireError('varint overflow');
  const b = yield* bytes(extra);
  const u = Buffer.alloc(4);
  b.copy(u, 0);
  if (extra < 4) u[extra] = ch & ((1 << (8 - extra)) - 1);
  return u.readInt32LE(0);
}

/** read_varlong(min): at least `min` bytes, a 64-bit value (as a safe integer, else an error). */
export function* varlong(min: number): Generator<Step, number, Buffer | undefined> {
  const b2 = yield* bytes(min);
  const u = Buffer.alloc(9);
  b2.copy(u, 0, 1, min);
  const extra = EXTRA[b2[0]! >> 2]!;
  if (extra) {
    if (min + extra > 9) throw new RsyncWireError('varlong overflow');
    const more = yield* bytes(extra);
    more.copy(u, min - 1);
    u[min + extra - 1] = b2[0]! & ((1 << (8 - extra)) - 1);
  } else u[min - 1] = b2[0]!;
  const v = u.readBigInt64LE(0);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new RsyncWireError('varlong beyond 2^53');
  return Number(v);
}

/** read_vstring: a length of 1 byte (or 2 with the top bit set), then the bytes. */
export function* vstring(): Generator<Step, Buffer, Buffer | undefined> {
  let len = yield* byte();
  if (len & 0x80) len = ((len & 0x7f) << 8) + (yield* byte());
  return yield* bytes(len);
}

/**
 * read_ndx (protocol ≥ 30): one state per direction. 0 is NDX_DONE; 0xFF introduces a negative
 * number; 0xFE a 2-byte difference or, with its top bit set, a 4-byte absolute value.
 */
export class NdxReader {
  private prevPositive = -1;
  private prevNegative = 1;

  *read(): Generator<Step, number, Buffer | undefined> {
    let b = yield* byte();
    let negative = false;
    if (b === 0xff) {
      negative = true;
      b = yield* byte();
    } else if (b === 0) return -1;
    const prev = negative ? this.prevNegative : this.prevPositive;
    let num: number;
    if (b === 0xfe) {
      const two = yield* bytes(2);
      if (two[0]! & 0x80) {
        const rest = yield* bytes(2);
        num = (((two[0]! & 0x7f) << 24) | (rest[1]! << 16) | (rest[0]! << 8) | two[1]!) >>> 0;
      } else num = (two[0]! << 8) + two[1]! + prev;
    } else num = b + prev;
    if (num > 0x7fffffff || num < 0) throw new RsyncWireError(`file index ${num} out of range`);
    if (negative) this.prevNegative = num;
    else this.prevPositive = num;
    return negative ? -num : num;
  }
}
