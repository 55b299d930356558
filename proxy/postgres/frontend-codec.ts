/**
 * Decoder for what a Postgres client sends (the frontend half of the protocol).
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 *
 * Pure: functions over buffers, no sockets or logging. Every read is bounds-checked and any
 * malformed input ends in a ProtocolError (never a RangeError or a hang).
 */

/** Malformed or oversized input from the client; `sqlstate` is what the client is told. */
export class ProtocolError extends Error {
  constructor(message: string, public readonly sqlstate = '08P01') {
    super(message);
    this.name = 'ProtocolError';
  }
}

export const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST_CODE = 80877103;
export const CANCEL_REQUEST_CODE = 80877102;
export const GSSENC_REQUEST_CODE = 80877104;
/** Same cap the server uses for a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_BYTES = 10_000;

export type StartupPacket =
  | { type: 'ssl-request' }
  | { type: 'gssenc-request' }
  | { type: 'cancel-request'; processId: number; secretKey: number }
  | { type: 'startup'; protocolVersion: number; params: Record<string, string> };

export type FrontendMessage =
  | { type: 'query'; sql: string }
  | { type: 'parse'; name: string; sql: string; paramTypes: number[] }
  | { type: 'bind'; portal: string; statement: string; paramFormats: number[]; params: (Buffer | null)[]; resultFormats: number[] }
  | { type: 'describe'; kind: 'S' | 'P'; name: string }
  | { type: 'execute'; portal: string; maxRows: number }
  | { type: 'close'; kind: 'S' | 'P'; name: string }
  | { type: 'sync' }
  | { type: 'flush' }
  | { type: 'function-call'; oid: number; argFormats: number[]; args: (Buffer | null)[]; resultFormat: number }
  | { type: 'copy-data'; bytes: number }
  | { type: 'copy-done' }
  | { type: 'copy-fail'; message: string }
  | { type: 'terminate' }
  /** 'p': password, SASL initial response or SASL response; only the proxy's auth step reads it. */
  | { type: 'password'; data: Buffer };

/** Message type bytes a client may send after startup. */
export const enum FrontendCode {
  Query = 0x51, // Q
  Parse = 0x50, // P
  Bind = 0x42, // B
  Describe = 0x44, // D
  Execute = 0x45, // E
  Sync = 0x53, // S
  Flush = 0x48, // H
  Close = 0x43, // C
  FunctionCall = 0x46, // F
  CopyData = 0x64, // d
  CopyDone = 0x63, // c
  CopyFail = 0x66, // f
  Terminate = 0x58, // X
  Password = 0x70, // p
}

/** Cursor over one message body; throws ProtocolError on any read past the end. */
class Reader {
  off = 0;
  constructor(private readonly buf: Buffer, private readonly what: string) {}

  private need(n: number): void {
    if (n < 0 || this.off + n > this.buf.length) throw new ProtocolError(`malformed ${this.what} message: truncated`);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.off);
    this.off += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.off);
    this.off += 4;
    return v;
  }
  byte(): number {
    this.need(1);
    return this.buf[this.off++]!;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.off);
    if (end < 0) throw new ProtocolError(`malformed ${this.what} message: unterminated string`);
    const s = this.buf.toString('utf8', this.off, end);
    this.off = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
  /** A count that prefixes `size`-byte items: must fit in what is left, so no giant loops. */
  count(size: number): number {
    const n = this.int16();
    if (n < 0 || n * size > this.buf.length - this.off) throw new ProtocolError(`malformed ${this.what} message: bad count`);
    return n;
  }
  end(): void {
    if (this.off !== this.buf.length) throw new ProtocolError(`malformed ${this.what} message: trailing bytes`);
  }
}

/**
 * Startup-phase packet body (after the Int32 length).
 *   Int32 code-or-version, then for StartupMessage: (String name, String value)* Byte 0
 *   CancelRequest: Int32 80877102, Int32 pid, Int32 secret
 */
export function decodeStartupPacket(body: Buffer): StartupPacket {
  const r = new Reader(body, 'startup');
  const code = r.int32();
  if (code === SSL_REQUEST_CODE) return r.end(), { type: 'ssl-request' };
  if (code === GSSENC_REQUEST_CODE) return r.end(), { type: 'gssenc-request' };
  if (code === CANCEL_REQUEST_CODE) {
    const processId = r.int32();
    const secretKey = r.int32();
    r.end();
    return { type: 'cancel-request', processId, secretKey };
  }
  if (code >> 16 !== 3) throw new ProtocolError(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}: server supports 3.0`, '0A000');
  const params: Record<string, string> = Object.create(null);
  for (;;) {
    const name = r.cstring();
    if (name === '') break;
    params[name] = r.cstring();
  }
  r.end();
  return { type: 'startup', protocolVersion: code, params };
}

function decodeValues(r: Reader): (Buffer | null)[] {
  const n = r.count(4);
  const out: (Buffer | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    if (len === -1) out[i] = null;
    else if (len < 0) throw new ProtocolError('malformed parameter length');
    else out[i] = r.bytes(len);
  }
  return out;
}

function formats(r: Reader): number[] {
  const n = r.count(2);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int16();
  return out;
}

function kind(r: Reader): 'S' | 'P' {
  const k = r.byte();
  if (k === 0x53) return 'S';
  if (k === 0x50) return 'P';
  throw new ProtocolError('malformed Describe/Close: kind must be S or P');
}

/** Decodes one regular message body (after type byte and Int32 length). */
export function decodeFrontendMessage(code: number, body: Buffer): FrontendMessage {
  switch (code) {
    case FrontendCode.Query: {
      // String query
      const r = new Reader(body, 'Query');
      const sql = r.cstring();
      r.end();
      return { type: 'query', sql };
    }
    case FrontendCode.Parse: {
      // String name, String query, Int16 n, Int32 oid × n
      const r = new Reader(body, 'Parse');
      const name = r.cstring();
      const sql = r.cstring();
      const n = r.count(4);
      const paramTypes: number[] = new Array(n);
      for (let i = 0; i < n; i++) paramTypes[i] = r.int32() >>> 0;
      r.end();
      return { type: 'parse', name, sql, paramTypes };
    }
    case FrontendCode.Bind: {
      // String portal, String stmt, Int16 n, Int16 fmt × n, Int16 m, (Int32 len, Byte × len) × m, Int16 k, Int16 fmt × k
      const r = new Reader(body, 'Bind');
      const portal = r.cstring();
      const statement = r.cstring();
      const paramFormats = formats(r);
      const params = decodeValues(r);
      const resultFormats = formats(r);
      r.end();
      return { type: 'bind', portal, statement, paramFormats, params, resultFormats };
    }
    case FrontendCode.Describe:
    case FrontendCode.Close: {
      // Byte 'S'|'P', String name
      const r = new Reader(body, code === FrontendCode.Close ? 'Close' : 'Describe');
      const k = kind(r);
      const name = r.cstring();
      r.end();
      return { type: code === FrontendCode.Close ? 'close' : 'describe', kind: k, name };
    }
    case FrontendCode.Execute: {
      // String portal, Int32 max rows
      const r = new Reader(body, 'Execute');
      const portal = r.cstring();
      const maxRows = r.int32();
      r.end();
      return { type: 'execute', portal, maxRows };
    }
    case FrontendCode.Sync:
    case FrontendCode.Flush:
    case FrontendCode.CopyDone:
    case FrontendCode.Terminate:
      if (body.length !== 0) throw new ProtocolError('malformed message: unexpected body');
      return { type: code === FrontendCode.Sync ? 'sync' : code === FrontendCode.Flush ? 'flush' : code === FrontendCode.CopyDone ? 'copy-done' : 'terminate' };
    case FrontendCode.FunctionCall: {
      // Int32 oid, Int16 n, Int16 fmt × n, Int16 m, (Int32 len, Byte × len) × m, Int16 result fmt
      const r = new Reader(body, 'FunctionCall');
      const oid = r.int32() >>> 0;
      const argFormats = formats(r);
      const args = decodeValues(r);
      const resultFormat = r.int16();
      r.end();
      return { type: 'function-call', oid, argFormats, args, resultFormat };
    }
    case FrontendCode.CopyData:
      return { type: 'copy-data', bytes: body.length };
    case FrontendCode.CopyFail: {
      const r = new Reader(body, 'CopyFail');
      const message = r.cstring();
      r.end();
      return { type: 'copy-fail', message };
    }
    case FrontendCode.Password:
      return { type: 'password', data: body };
    default:
      throw new ProtocolError(`invalid frontend message type ${code}`);
  }
}

/** One complete frame: `raw` is the whole message (type byte included) as a view, not a copy. */
export interface Frame {
  /** Message type byte; 0 for a startup-phase packet. */
  code: number;
  raw: Buffer;
  body: Buffer;
}

/**
 * Splits a client byte stream into frames, carrying leftover bytes between chunks. In startup
 * mode frames are `Int32 len, body` (no type byte); call `regular()` once startup is done.
 * Length is checked before the body is buffered, so an oversized message fails fast.
 */
export class FrontendFramer {
  private carry: Buffer[] = [];
  private carryLen = 0;
  /** Bytes the first carried frame needs in total, once its header is known (0: unknown). */
  private need = 0;
  private startup = true;

  constructor(private maxMessageBytes: number) {}

  /** Changes the cap on one message (pre-auth it is what a token needs; after login `max_message_bytes`). */
  setLimit(maxMessageBytes: number): void {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Switches to regular framing (type byte + Int32 length). */
  regular(): void {
    this.startup = false;
  }

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.carryLen;
  }

  /**
   * Returns the complete frames in `chunk` (plus what was carried). When `one` is set, stops
   * after the first frame and keeps the rest (startup: the caller may switch framing or TLS).
   */
  push(chunk: Buffer, one = false): Frame[] {
    let buf = chunk;
    if (this.carryLen > 0) {
      // A large message arrives in many chunks: gather them and concatenate once, not per chunk.
      if (this.need > 0 && this.carryLen + chunk.length < this.need) {
        this.carry.push(chunk);
        this.carryLen += chunk.length;
        return [];
      }
      this.carry.push(chunk);
      buf = Buffer.concat(this.carry, this.carryLen + chunk.length);
      this.carry = [];
      this.carryLen = 0;
    }
    this.need = 0;
    const frames: Frame[] = [];
    let off = 0;
    const hdr = this.startup ? 4 : 5;
    while (buf.length - off >= hdr) {
      const code = this.startup ? 0 : buf[off]!;
      const len = buf.readInt32BE(this.startup ? off : off + 1);
      if (this.startup) {
        if (len < 8 || len > MAX_STARTUP_BYTES) throw new ProtocolError('invalid length of startup packet');
      } else {
        if (len < 4) throw new ProtocolError(`invalid message length ${len}`);
        if (len > this.maxMessageBytes) throw new ProtocolError(`message of ${len} bytes is over the limit of ${this.maxMessageBytes}`, '54000');
      }
      const total = this.startup ? len : len + 1;
      if (buf.length - off < total) {
        this.need = total;
        break;
      }
      frames.push({ code, raw: buf.subarray(off, off + total), body: buf.subarray(off + hdr, off + total) });
      off += total;
      if (one) break;
    }
    if (off < buf.length) {
      this.carry = [buf.subarray(off)];
      this.carryLen = buf.length - off;
    }
    return frames;
  }

  /** Returns and forgets what is carried (e.g. bytes after an SSLRequest, which must be none). */
  takeCarry(): Buffer {
    const c = Buffer.concat(this.carry, this.carryLen);
    this.carry = [];
    this.carryLen = 0;
    this.need = 0;
    return c;
  }
}
