/**
 * Splits the upstream server's byte stream into message boundaries while relaying it raw.
 *
 * Only CommandComplete ('C'), ErrorResponse ('E'), ReadyForQuery ('Z') and ParameterStatus ('S') bodies are held and
 * handed over (the recorder needs tags, errors and transaction status); every other message,
 * DataRow above all, streams through as the bytes arrived, split or not. A held message can be
 * replaced (the proxy rewrites the error of a statement its policy denied). A partial header
 * at the end of a chunk is held back, so the bytes sent to the client always end on a message
 * boundary or inside a streamed message body: `atBoundary` says which.
 */

/** Upper bound on a held message; a bigger one streams through unseen (body undefined). */
const MAX_HELD = 1 << 20;

const HELD = new Uint8Array(256);
HELD[0x43] = 1; // C CommandComplete
HELD[0x45] = 1; // E ErrorResponse
HELD[0x5a] = 1; // Z ReadyForQuery
HELD[0x53] = 1; // S ParameterStatus (rare: the parse pins watch it, parse-pins.ts)

export class UpstreamProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamProtocolError';
  }
}

/**
 * Called once per complete message, in order. `msg` (type byte, length and body) is given for
 * held messages only; returning a Buffer sends it instead of that message.
 */
export type OnBackendMessage = (code: number, msg: Buffer | undefined, bodyLen: number) => Buffer | undefined;

export class BackendStream {
  private readonly hdr = Buffer.alloc(5);
  private hdrLen = 0;
  private code = 0;
  private bodyLen = 0;
  /** Body bytes still to come for the current message (streamed or held). */
  private remaining = 0;
  private inMessage = false;
  private held: Buffer | undefined;
  private heldOff = 0;

  /** True when everything returned so far ends on a message boundary. */
  get atBoundary(): boolean {
    return !this.inMessage || this.held !== undefined;
  }

  /**
   * Returns the pieces to write to the client, in order. With `stopAtBoundary`, stops at the
   * first message end and drops the rest of the chunk (a session ending mid-message sends what
   * completes the message, then its FATAL).
   */
  scan(chunk: Buffer, onMessage: OnBackendMessage, stopAtBoundary = false): Buffer[] {
    const out: Buffer[] = [];
    const n = chunk.length;
    let off = 0;
    let run = 0; // start of the pass-through run not yet added to `out`
    while (off < n) {
      if (this.inMessage) {
        const take = Math.min(this.remaining, n - off);
        if (this.held) {
          chunk.copy(this.held, this.heldOff, off, off + take);
          this.heldOff += take;
          run = off + take;
        }
        off += take;
        this.remaining -= take;
        if (this.remaining > 0) break;
        this.finish(out, onMessage);
        if (stopAtBoundary) return cut(out, chunk, run, off);
        continue;
      }
      // Header: Byte type, Int32 length (counting itself).
      let start = off; // -1 when the header began in an earlier chunk
      let code: number;
      let len: number;
      if (this.hdrLen === 0 && n - off >= 5) {
        code = chunk[off]!;
        len = chunk.readInt32BE(off + 1);
        off += 5;
      } else {
        if (this.hdrLen > 0) start = -1;
        const t = Math.min(5 - this.hdrLen, n - off);
        chunk.copy(this.hdr, this.hdrLen, off, off + t);
        this.hdrLen += t;
        off += t;
        if (this.hdrLen < 5) {
          if (start > run) out.push(chunk.subarray(run, start));
          run = n;
          break;
        }
        this.hdrLen = 0;
        code = this.hdr[0]!;
        len = this.hdr.readInt32BE(1);
      }
      if (len < 4) throw new UpstreamProtocolError(`invalid message length ${len} from server`);
      const bodyLen = len - 4;
      const hold = HELD[code] === 1 && bodyLen <= MAX_HELD;
      if (start >= 0 && off + bodyLen <= n) {
        // Whole message inside this chunk: no copy unless it is replaced.
        const end = off + bodyLen;
        if (hold) {
          const rep = onMessage(code, chunk.subarray(start, end), bodyLen);
          if (rep) {
            if (start > run) out.push(chunk.subarray(run, start));
            out.push(rep);
            run = end;
          }
        } else {
          onMessage(code, undefined, bodyLen);
        }
        off = end;
        if (stopAtBoundary) return cut(out, chunk, run, off);
        continue;
      }
      if (hold) {
        if (start > run) out.push(chunk.subarray(run, start));
        this.held = Buffer.allocUnsafe(5 + bodyLen);
        if (start >= 0) chunk.copy(this.held, 0, start, off);
        else this.hdr.copy(this.held, 0, 0, 5);
        this.heldOff = 5;
        run = off;
      } else if (start < 0) {
        out.push(Buffer.from(this.hdr));
        run = off;
      }
      this.code = code;
      this.bodyLen = bodyLen;
      this.remaining = bodyLen;
      this.inMessage = true;
      if (bodyLen === 0) {
        this.finish(out, onMessage);
        if (stopAtBoundary) return cut(out, chunk, run, off);
      }
    }
    if (run < n) out.push(run === 0 ? chunk : chunk.subarray(run, n));
    return out;
  }

  private finish(out: Buffer[], onMessage: OnBackendMessage): void {
    this.inMessage = false;
    const msg = this.held;
    if (msg) {
      this.held = undefined;
      out.push(onMessage(this.code, msg, this.bodyLen) ?? msg);
    } else {
      onMessage(this.code, undefined, this.bodyLen);
    }
  }
}

function cut(out: Buffer[], chunk: Buffer, run: number, off: number): Buffer[] {
  if (off > run) out.push(chunk.subarray(run, off));
  return out;
}
