import { closeSync, openSync, readSync } from 'node:fs';
import { decodeFileHeader, FRAME_HEADER, FrameType, MAX_HEADER, MAX_PAYLOAD, RawFormatError, type RawFrame } from '../raw-frame.js';

/** What reads the frames: it says which Data payloads it needs, and gets each whole frame it does. */
export interface RawScanSink {
  /** False for a Data frame that would add nothing (a stream known to be binary, output past the cap): skipped unread. */
  wantsData(stream: number, channel: number): boolean;
  /** A whole frame, in file order. Its payload is valid during the call only (the read buffer is reused). */
  frame(f: RawFrame): void;
  /** The file is not a raw recording from here on (bad magic or header, a frame no writer makes). */
  broken(): void;
}

/**
 * Read-ahead: from MIN_AHEAD, doubled with each frame read up to CHUNK, so text frames come many
 * to a read; after a skipped payload of LONG_SKIP or more, the next read takes the next header
 * only, so a frame to skip is not read into the buffer by read-ahead either.
 */
const CHUNK = 64 * 1024;
const MIN_AHEAD = 4 * 1024;
const LONG_SKIP = 16 * 1024;

/**
 * Reads a raw recording (recorder/raw-frame.ts) frame by frame from a file offset, without
 * reading the payloads of Data frames the sink does not want: those are skipped by their
 * headers, so a binary bulk transfer costs one 14-byte read per frame (the writer batches 64
 * KiB) instead of every byte. Synchronous: it runs in the index worker thread or a CLI verb.
 */
export class RawScanner {
  private buf = Buffer.allocUnsafe(CHUNK);
  /** Bytes read from files so far. */
  bytesRead = 0;

  /**
   * Reads from `offset` (0: the file's start, else a frame boundary a previous scan returned) to
   * the end of the file or until `budget` bytes were read. A frame not yet whole is left for the
   * next scan. Returns the offset to go on from and whether bytes were left because of the
   * budget. A payload skipped may reach past the end of a file still being written: the next
   * header is at that offset all the same.
   */
  scan(path: string, offset: number, sink: RawScanSink, budget = Infinity): { offset: number; more: boolean } {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { offset, more: false };
      throw err;
    }
    const readBefore = this.bytesRead;
    /** The buffer holds the file's bytes [at, at + len). */
    let at = offset;
    let len = 0;
    let ahead = MIN_AHEAD;
    const fill = (pos: number, need: number): boolean => {
      if (pos >= at && pos + need <= at + len) return true;
      const want = Math.max(need, ahead);
      if (this.buf.length < want) this.buf = Buffer.allocUnsafe(want);
      const got = readSync(fd, this.buf, 0, want, pos);
      this.bytesRead += got;
      at = pos;
      len = got;
      return got >= need;
    };
    let pos = offset;
    let more = false;
    try {
      if (pos === 0) {
        if (!fill(0, 1)) return { offset: 0, more: false };
        let h: ReturnType<typeof decodeFileHeader>;
        try {
          h = decodeFileHeader(this.buf.subarray(0, len));
          if (!h && len >= MAX_HEADER) throw new RawFormatError('raw recording header too long');
        } catch (err) {
          if (!(err instanceof RawFormatError)) throw err;
          sink.broken();
          return { offset: 0, more: false };
        }
        if (!h) return { offset: 0, more: false };
        pos = h.length;
      }
      for (;;) {
        if (this.bytesRead - readBefore >= budget && !(pos >= at && pos + FRAME_HEADER <= at + len)) {
          more = true;
          break;
        }
        if (!fill(pos, FRAME_HEADER)) break;
        const h = pos - at;
        const type = this.buf[h]!;
        const size = this.buf.readUInt32BE(h + 10);
        if (type < FrameType.Data || type > FrameType.Transfer || size > MAX_PAYLOAD) {
          sink.broken();
          break;
        }
        const stream = this.buf[h + 1]!;
        const channel = this.buf.readUInt16BE(h + 2);
        if (type === FrameType.Data && !sink.wantsData(stream, channel)) {
          pos += FRAME_HEADER + size;
          ahead = size >= LONG_SKIP ? FRAME_HEADER : MIN_AHEAD;
          continue;
        }
        if (!fill(pos, FRAME_HEADER + size)) break;
        ahead = Math.min(CHUNK, Math.max(MIN_AHEAD, ahead * 2));
        const p = pos - at + FRAME_HEADER;
        sink.frame({ type, stream, channel, t: this.buf.readUIntBE(pos - at + 4, 6), payload: this.buf.subarray(p, p + size), offset: pos });
        pos += FRAME_HEADER + size;
      }
    } finally {
      closeSync(fd);
      if (this.buf.length > CHUNK) this.buf = Buffer.allocUnsafe(CHUNK); // grown for a rare long frame
    }
    return { offset: pos, more };
  }
}
