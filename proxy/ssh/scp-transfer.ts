import { basename, dirname, posix } from 'node:path';
import { FileContent, type ContentSink, type FileDigest } from './file-content.js';

/** Longest control line accepted (`C0644 SIZE NAME`); a longer one stops the parsing. */
const LINE_MAX = 8 * 1024;

/**
 * Reads the legacy scp protocol (`scp -t` / `scp -f`, RCP-style) on its data direction
 * without changing it: the client's stdin for an upload, the target's stdout for a download.
 *
 *   Cmmmm SIZE NAME\n  SIZE bytes  \0     a file
 *   Dmmmm 0 NAME\n  …  E\n               a directory and its end
 *   Tmtime 0 atime 0\n                   times of the next item
 *   \0 | \1 message\n | \2 message\n     acks, warnings, errors
 *
 * Each file is reported with its size and SHA-256 (file-content.ts). Anything not understood
 * stops the parsing, reported once, never the relay.
 */
export class ScpTransfer {
  private line: Buffer[] = [];
  private lineLen = 0;
  private file: { name: string; size: number; got: number; content: FileContent } | undefined;
  /** After a file's bytes: its closing \0. */
  private trailer = false;
  private readonly dirs: string[] = [];
  broken = false;

  constructor(
    private readonly direction: 'upload' | 'download',
    private readonly base: string,
    private readonly onFile: (f: { path: string; direction: 'upload' | 'download' }, digest: FileDigest & { stored?: Promise<void> }) => void,
    private readonly onBroken: (why: string) => void,
    private readonly sink?: () => ContentSink | undefined,
    /** The command asked for a directory target (`-d`, `-r`) or named one (`…/`). */
    private readonly dirTarget = base.endsWith('/'),
  ) {}

  feed(chunk: Buffer): void {
    let off = 0;
    while (!this.broken && off < chunk.length) {
      if (this.file) {
        const take = Math.min(this.file.size - this.file.got, chunk.length - off);
        this.file.content.write(this.file.got, chunk.subarray(off, off + take));
        this.file.got += take;
        off += take;
        if (this.file.got === this.file.size) this.endFile();
        continue;
      }
      if (this.trailer) {
        this.trailer = false;
        off++; // the \0 after a file's bytes
        continue;
      }
      if (this.lineLen === 0 && chunk[off] === 0) {
        off++; // an ack
        continue;
      }
      const nl = chunk.indexOf(0x0a, off);
      const end = nl < 0 ? chunk.length : nl;
      this.line.push(chunk.subarray(off, end));
      this.lineLen += end - off;
      off = nl < 0 ? chunk.length : nl + 1;
      if (this.lineLen > LINE_MAX) return this.fail('scp control line too long');
      if (nl >= 0) {
        const text = Buffer.concat(this.line).toString('utf8');
        this.line = [];
        this.lineLen = 0;
        this.handleLine(text);
      }
    }
  }

  /** The channel ended: a file cut short is reported with what passed (no SHA-256). */
  end(): void {
    if (this.file) {
      const f = this.file;
      this.file = undefined;
      f.content.cut(`the transfer stopped after ${f.got} of ${f.size} bytes`);
      this.onFile({ path: this.pathOf(f.name), direction: this.direction }, f.content.finish());
    }
  }

  private handleLine(text: string): void {
    const kind = text[0];
    if (kind === '\u0001' || kind === '\u0002' || kind === 'T') return;
    if (kind === 'E') {
      this.dirs.pop();
      return;
    }
    const m = /^([CD])([0-7]{4}) (\d+) (.+)$/.exec(text);
    if (!m || m[4]!.includes('/') || m[4] === '..') return this.fail('scp control line not understood');
    if (m[1] === 'D') {
      this.dirs.push(m[4]!);
      return;
    }
    const size = Number(m[3]);
    if (!Number.isSafeInteger(size)) return this.fail('scp file size not understood');
    this.file = { name: m[4]!, size, got: 0, content: new FileContent(this.sink?.()) };
    if (size === 0) this.endFile();
  }

  private endFile(): void {
    const f = this.file!;
    this.file = undefined;
    this.trailer = true;
    this.onFile({ path: this.pathOf(f.name), direction: this.direction }, f.content.finish());
  }

  /** The file's path on the target, as near as the protocol tells it. */
  private pathOf(name: string): string {
    if (this.direction === 'download') {
      if (!this.dirs.length) return basename(this.base) === name ? this.base : posix.join(dirname(this.base), name);
      return posix.join(dirname(this.base), ...this.dirs, name);
    }
    if (this.dirs.length || this.dirTarget) return posix.join(this.base, ...this.dirs, name);
    return this.base;
  }

  private fail(why: string): void {
    this.broken = true;
    this.onBroken(`${why}; scp files no longer recorded`);
  }
}
