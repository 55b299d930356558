import { createHash } from 'node:crypto';

/** Out-of-order bytes held while waiting for the gap before them; past this the hash is given up. */
const PENDING_MAX = 64 * 1024 * 1024;

/** Where a transferred file's content goes when the target keeps contents (`recording: { transfers: content }`). */
export interface ContentSink {
  append(data: Buffer): void;
  /** The content is complete with this SHA-256: keep it (once per hash). */
  commit(sha256: string): Promise<void>;
  /** Incomplete or unverifiable: drop what was written. */
  abort(): Promise<void>;
}

export interface FileDigest {
  /** Bytes hashed, from offset 0 without a gap. */
  size: number;
  /** SHA-256 of those bytes; absent when the content seen had gaps or overlaps (why says). */
  sha256?: string;
  why?: string;
}

/**
 * One transferred file's content as it passes, given as (offset, bytes) pieces in any order
 * (SFTP requests carry offsets and clients pipeline them): hashed in file order, pieces ahead of
 * the next offset held until the gap fills. Overlapping or rewritten ranges make the hash
 * unavailable rather than wrong.
 */
export class FileContent {
  private readonly hash = createHash('sha256');
  private next = 0;
  private readonly ahead = new Map<number, Buffer>();
  private aheadBytes = 0;
  private why: string | undefined;

  constructor(private readonly sink?: ContentSink) {}

  write(offset: number, data: Buffer): void {
    if (this.why || !data.length) return;
    if (offset < this.next) return this.give('a range was sent twice');
    if (offset > this.next) {
      if (this.ahead.has(offset)) return this.give('a range was sent twice');
      this.ahead.set(offset, Buffer.from(data));
      this.aheadBytes += data.length;
      if (this.aheadBytes > PENDING_MAX) this.give('too much content out of order');
      return;
    }
    this.take(data);
    for (let b = this.ahead.get(this.next); b && !this.why; b = this.ahead.get(this.next)) {
      this.ahead.delete(this.next);
      this.aheadBytes -= b.length;
      this.take(b);
    }
  }

  /**
   * The digest, at once (so the record is written while the recording is open); the sink keeps
   * the content only when it is whole, in the background (`stored` settles when it is kept).
   */
  finish(): FileDigest & { stored?: Promise<void> } {
    if (!this.why && this.ahead.size) this.give('a range of the file never passed');
    if (this.why) {
      void this.sink?.abort().catch(() => undefined);
      return { size: this.next, why: this.why };
    }
    const sha256 = this.hash.digest('hex');
    return { size: this.next, sha256, ...(this.sink ? { stored: this.sink.commit(sha256) } : {}) };
  }

  /** The transfer stopped before the file's end: no SHA-256, for this reason. */
  cut(why: string): void {
    this.give(why);
  }

  private take(data: Buffer): void {
    this.hash.update(data);
    this.sink?.append(data);
    this.next += data.length;
  }

  private give(why: string): void {
    this.why ??= why;
    this.ahead.clear();
    this.aheadBytes = 0;
  }
}
