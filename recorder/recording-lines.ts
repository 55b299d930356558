import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** One line of a recording file: its text and where its bytes sit in the file. */
export interface RecordingLine {
  text: string;
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Byte length, newline included. */
  bytes: number;
  /** False for a last line without its newline: a live file mid-write, or torn by a crash. */
  complete: boolean;
  /** The reader's `skip` said so: the line was not decoded (`text` is ''). */
  skipped?: true;
}

/** Says, from a complete line's bytes `buf[from, to)` (newline not included), that it is not wanted: it is not decoded. */
export type SkipLine = (buf: Buffer, from: number, to: number) => boolean;

/**
 * The complete lines of a recording file from byte `start`, in order. Lines are cut on the
 * newline byte before decoding, so a UTF-8 sequence split across read chunks survives and
 * offsets are exact. A last line without its newline comes with `complete: false` (readers
 * that count bytes or events skip it; a torn JSON line fails to parse anyway). Lines come in
 * batches, one per read chunk, so a 50 MB recording costs one await per 64 KiB, not one per
 * event. `end` (exclusive) stops the reading there: a line it cuts comes as incomplete.
 */
export async function* lineBatches(path: string, start = 0, end = Infinity): AsyncGenerator<RecordingLine[]> {
  const stream = createReadStream(path, { start, ...(Number.isFinite(end) ? { end: Math.max(start, end) - 1 } : {}) });
  let carry: Buffer = Buffer.alloc(0);
  let base = start;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      const batch: RecordingLine[] = [];
      const from = cutLines(buf, base, batch);
      base += from;
      carry = buf.subarray(from);
      if (batch.length) yield batch;
    }
    if (carry.length) yield [{ text: carry.toString('utf8'), offset: base, bytes: carry.length, complete: false }];
  } finally {
    stream.destroy();
  }
}

/**
 * At most this many bytes (plus the rest of a line longer than it) are decoded into one string by
 * lineBatchesSync: a string over 128 KiB is a V8 large object, a fresh mapping faulted in page by
 * page for every chunk read, which was most of the index worker's system time while reading.
 */
const DECODE_SPAN = 64 * 1024;

/**
 * Cuts the complete lines out of `buf` (bytes from file offset `base`); returns where the unfinished
 * rest begins. Without `skip`, decodes `span` bytes or so at a time, each piece ending on a newline.
 */
function cutLines(buf: Buffer, base: number, batch: RecordingLine[], skip?: SkipLine, span = Infinity): number {
  const end = buf.lastIndexOf(10);
  let from = 0;
  if (end >= 0 && skip) {
    // Line by line, so a skipped line is never decoded (the index past its output cap).
    while (from <= end) {
      const nl = buf.indexOf(10, from);
      const line: RecordingLine = skip(buf, from, nl)
        ? { text: '', offset: base + from, bytes: nl + 1 - from, complete: true, skipped: true }
        : { text: buf.toString('utf8', from, nl), offset: base + from, bytes: nl + 1 - from, complete: true };
      batch.push(line);
      from = nl + 1;
    }
    return from;
  }
  while (from <= end) {
    let stop = end;
    if (end - from > span) {
      // The last newline within the span, or (one line longer than the span) the end of that line.
      const nl = buf.lastIndexOf(10, from + span);
      stop = nl >= from ? nl : buf.indexOf(10, from + span);
    }
    // One decode per piece: a newline byte is a newline character in UTF-8, so the string's
    // lines and the byte positions of the newlines line up one to one.
    const texts = buf.toString('utf8', from, stop).split('\n');
    for (const text of texts) {
      const nl = buf.indexOf(10, from);
      batch.push({ text, offset: base + from, bytes: nl + 1 - from, complete: true });
      from = nl + 1;
    }
  }
  return from;
}

/**
 * lineBatches with synchronous reads into one reused buffer, for a thread that may block (the
 * index worker, `pam index rebuild`): no stream, no thread-pool round trip per chunk, so the
 * reading is done (and its CPU counted) on the calling thread, at its priority. `skip()`, asked
 * when a chunk's lines are cut (before the caller sees any of them), may leave complete lines
 * undecoded; a last line without its newline is always decoded.
 */
export function* lineBatchesSync(path: string, start = 0, end = Infinity, chunkBytes = 256 * 1024, skip?: () => SkipLine | undefined, decodeSpan = DECODE_SPAN): Generator<RecordingLine[]> {
  const fd = openSync(path, 'r');
  try {
    // One buffer for the whole read: the unfinished last line is moved to its start and the next
    // read lands after it (no concatenation into a new buffer per chunk); it doubles only for a
    // line longer than itself. The lines are strings, so nothing yielded points into it.
    let buf = Buffer.allocUnsafe(chunkBytes);
    let kept = 0;
    let base = start;
    let pos = start;
    while (pos < end) {
      if (kept === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, kept);
        buf = bigger;
      }
      const n = readSync(fd, buf, kept, Math.min(buf.length - kept, end - pos), pos);
      if (n === 0) break;
      pos += n;
      const data = buf.subarray(0, kept + n);
      const batch: RecordingLine[] = [];
      const from = cutLines(data, base, batch, skip?.(), decodeSpan);
      base += from;
      kept = data.length - from;
      buf.copyWithin(0, from, data.length);
      if (batch.length) yield batch;
    }
    if (kept) yield [{ text: buf.toString('utf8', 0, kept), offset: base, bytes: kept, complete: false }];
  } finally {
    closeSync(fd);
  }
}

/** The complete lines of a recording file, one at a time (see lineBatches). */
export async function* lines(path: string, start = 0): AsyncGenerator<RecordingLine> {
  for await (const batch of lineBatches(path, start)) yield* batch;
}

/** The first line (the asciicast header), read without streaming the file. */
export async function firstLine(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(10);
    return buf.toString('utf8', 0, nl < 0 ? bytesRead : nl);
  } finally {
    await fh.close();
  }
}
