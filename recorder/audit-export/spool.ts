import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';

/** What survives a restart besides the spooled lines: how far delivery got, and what was taken in. */
interface Cursor {
  /** Byte offset in the spool file of the first line not yet delivered. */
  offset: number;
  /** Highest audit `seq` taken in (spooled or deliberately dropped): catch-up starts after it. */
  lastSeq: number;
  /** Events dropped in the current overflow episode (survives a restart so `resumed` counts them). */
  dropped: number;
  firstDroppedSeq?: number;
}

/** Read at most this much per peek, so one huge backlog never lands in memory at once. */
const PEEK_BYTES = 1024 * 1024;

/**
 * The on-disk queue of one sink: `NAME.spool` holds one audit entry (JSON) per line, in seq
 * order; `NAME.cursor` records the offset of the first undelivered line, rewritten atomically
 * (tmp + rename) after each delivered batch. Every entry goes through it, up or down, so order
 * holds and a crash loses nothing (an entry delivered but not yet committed is sent again: at
 * least once, with `seq` for the receiver to drop duplicates).
 *
 * Bounded: an entry that would make the undelivered part exceed `maxBytes` is refused
 * (`append` returns false) and the caller counts it. The file is compacted when everything in
 * it is delivered, or when the delivered head passes half the bound.
 *
 * Synchronous file calls: audit entries are small and few next to recording writes, which
 * already write on the event loop (recorder/recording-file.ts).
 */
export class Spool {
  private fd: number;
  private size: number;
  private cursor: Cursor;
  private pendingLines: number;

  private constructor(private readonly path: string, private readonly cursorPath: string, private readonly maxBytes: number) {
    this.cursor = existsSync(cursorPath) ? (JSON.parse(readFileSync(cursorPath, 'utf8')) as Cursor) : { offset: 0, lastSeq: -1, dropped: 0 };
    this.fd = openSync(path, 'a+', 0o600);
    this.size = fstatSync(this.fd).size;
    if (this.cursor.offset > this.size) this.cursor.offset = this.size;
    this.pendingLines = this.countLines(this.cursor.offset);
  }

  static open(dir: string, name: string, maxBytes: number): Spool {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new Spool(join(dir, `${name}.spool`), join(dir, `${name}.cursor`), maxBytes);
  }

  /** -1 before the first entry was ever taken in (a new sink). */
  get lastSeq(): number {
    return this.cursor.lastSeq;
  }

  get pendingBytes(): number {
    return this.size - this.cursor.offset;
  }

  get pendingEvents(): number {
    return this.pendingLines;
  }

  get overflow(): { dropped: number; firstDroppedSeq?: number } {
    return { dropped: this.cursor.dropped, firstDroppedSeq: this.cursor.firstDroppedSeq };
  }

  /** Marks `seq` as taken in without spooling anything (a new sink starts at the log's end). */
  skipTo(seq: number): void {
    if (seq <= this.cursor.lastSeq) return;
    this.cursor.lastSeq = seq;
    this.saveCursor();
  }

  /** Spools one entry line; false (nothing written) if the bound would be passed. */
  append(seq: number, line: string): boolean {
    const buf = Buffer.from(line.endsWith('\n') ? line : line + '\n', 'utf8');
    this.cursor.lastSeq = Math.max(this.cursor.lastSeq, seq);
    if (this.pendingBytes + buf.length > this.maxBytes) {
      if (this.cursor.dropped === 0) this.cursor.firstDroppedSeq = seq;
      this.cursor.dropped++;
      this.saveCursor();
      return false;
    }
    writeSync(this.fd, buf, 0, buf.length, this.size);
    this.size += buf.length;
    this.pendingLines++;
    if (this.cursor.dropped) this.saveCursor();
    return true;
  }

  /** Ends an overflow episode; returns what it lost. */
  clearOverflow(): { dropped: number; firstDroppedSeq?: number } {
    const o = this.overflow;
    this.cursor.dropped = 0;
    delete this.cursor.firstDroppedSeq;
    this.saveCursor();
    return o;
  }

  /** Up to `max` undelivered lines from the head, and the offset just past them. */
  peek(max: number): { lines: string[]; end: number } {
    const lines: string[] = [];
    let at = this.cursor.offset;
    while (lines.length < max && at < this.size) {
      const len = Math.min(PEEK_BYTES, this.size - at);
      const buf = Buffer.alloc(len);
      const n = readSync(this.fd, buf, 0, len, at);
      let start = 0;
      for (let nl = buf.indexOf(0x0a, 0); nl !== -1 && nl < n && lines.length < max; nl = buf.indexOf(0x0a, start)) {
        lines.push(buf.toString('utf8', start, nl));
        start = nl + 1;
      }
      if (start === 0) {
        // A line longer than one read: take it whole.
        const whole = readFileSync(this.path).subarray(at);
        const nl = whole.indexOf(0x0a);
        if (nl === -1) break;
        lines.push(whole.toString('utf8', 0, nl));
        start = nl + 1;
      }
      at += start;
    }
    return { lines, end: at };
  }

  /** The lines up to `end` (from `peek`) are delivered. */
  commit(end: number, lines: number): void {
    this.cursor.offset = end;
    this.pendingLines = Math.max(0, this.pendingLines - lines);
    if (this.cursor.offset === this.size) {
      ftruncateSync(this.fd, 0);
      this.size = 0;
      this.cursor.offset = 0;
    } else if (this.cursor.offset > this.maxBytes / 2) {
      this.compact();
    }
    this.saveCursor();
  }

  close(): void {
    closeSync(this.fd);
  }

  private compact(): void {
    const rest = Buffer.alloc(this.size - this.cursor.offset);
    readSync(this.fd, rest, 0, rest.length, this.cursor.offset);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, rest, { mode: 0o600 });
    // The cursor must point into the new file the moment it replaces the old one.
    this.cursor.offset = 0;
    this.saveCursor();
    renameSync(tmp, this.path);
    closeSync(this.fd);
    this.fd = openSync(this.path, 'a+', 0o600);
    this.size = rest.length;
  }

  private countLines(from: number): number {
    let n = 0;
    let at = from;
    const buf = Buffer.alloc(64 * 1024);
    while (at < this.size) {
      const got = readSync(this.fd, buf, 0, buf.length, at);
      if (got <= 0) break;
      for (let i = 0; i < got; i++) if (buf[i] === 0x0a) n++;
      at += got;
    }
    return n;
  }

  private saveCursor(): void {
    const tmp = `${this.cursorPath}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.cursor), { mode: 0o600 });
    renameSync(tmp, this.cursorPath);
  }
}
