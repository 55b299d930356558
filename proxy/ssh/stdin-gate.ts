/**
 * The line gate of a shell that has no pty (`ssh -T host`, `printf 'cmd\n' | ssh host`, or an
 * exec of a bare shell such as `ssh host bash`): the shell reads its commands from stdin, so
 * stdin is cut into lines and each complete command line goes through the same command policy
 * as an Enter in a pty shell BEFORE any byte of it is written upstream. Allowed lines are
 * written as received; a denied line is dropped whole and `[pam] denied: MESSAGE` goes to the
 * client's stderr; the session goes on with the next line. Order is kept: a line is judged only
 * after every line before it has been judged and written.
 *
 * A command the shell would read as one (a quote left open, a trailing backslash) is judged
 * whole: `rm 'can` + `ary'` cannot split a denied command across lines. A heredoc body is
 * judged line by line as if each line were a command (over-denies, the safe side). A last line
 * without a newline is judged at EOF. Text that stays open past MAX_PENDING is judged as it is.
 */
import type { EnterVerdict, OnEnter } from './enter-gate.js';

/** Held input above this pauses the client (the SSH window then stops the sender). */
const MAX_QUEUED = 64 * 1024;
/** A command line still open (quote, continuation) past this many bytes is judged as it stands. */
const MAX_PENDING = 64 * 1024;

export interface StdinGateIo {
  toTarget(data: Buffer): void;
  /** A line for the user (stderr). */
  toClient(text: string): void;
  pauseClient(): void;
  resumeClient(): void;
  onVerdict?(line: string, verdict: EnterVerdict): void;
}

export class StdinGate {
  private chunks: Buffer[] = [];
  private queued = 0;
  /** Bytes of the command line being collected (complete lines only, possibly several). */
  private pending: Buffer = Buffer.alloc(0);
  private busy = false;
  private paused = false;
  private ended = false;
  private disposed = false;
  private readonly abort = new AbortController();
  private idle: Promise<void> = Promise.resolve();

  constructor(private readonly hook: OnEnter, private readonly io: StdinGateIo) {}

  input(data: Buffer): void {
    if (this.disposed || this.ended) return;
    this.chunks.push(data);
    this.queued += data.length;
    if (this.queued > MAX_QUEUED && !this.paused) {
      this.paused = true;
      this.io.pauseClient();
    }
    this.kick();
  }

  /** Client EOF: the last, unterminated line is judged too. Resolves once everything is written or dropped. */
  async end(): Promise<void> {
    this.ended = true;
    this.kick();
    await this.idle;
  }

  dispose(): void {
    this.disposed = true;
    this.abort.abort();
  }

  private kick(): void {
    if (this.busy) return;
    this.busy = true;
    this.idle = this.drain().finally(() => {
      this.busy = false;
    });
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (this.disposed) return;
      const chunk = this.chunks.shift();
      if (!chunk) {
        if (this.ended && this.pending.length) await this.judge(this.take(this.pending.length));
        return;
      }
      this.queued -= chunk.length;
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        this.pending = Buffer.concat([this.pending, chunk.subarray(start, nl + 1)]);
        start = nl + 1;
        if (!openCommand(this.pending.toString('utf8')) || this.pending.length > MAX_PENDING) await this.judge(this.take(this.pending.length));
        if (this.disposed) return;
      }
      if (start < chunk.length) this.pending = Buffer.concat([this.pending, chunk.subarray(start)]);
      if (this.pending.length > MAX_PENDING) await this.judge(this.take(this.pending.length));
      if (this.paused && this.queued <= MAX_QUEUED / 2) {
        this.paused = false;
        this.io.resumeClient();
      }
    }
  }

  private take(n: number): Buffer {
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }

  private async judge(bytes: Buffer): Promise<void> {
    const line = bytes.toString('utf8').replace(/\r?\n$/, '');
    let verdict: EnterVerdict;
    try {
      verdict = line.trim() ? await this.hook(line, { notify: (t) => this.io.toClient(t), signal: this.abort.signal }) : { action: 'allow' };
    } catch (err) {
      verdict = { action: 'deny', message: `policy check failed: ${(err as Error).message}` };
    }
    if (this.disposed) return;
    this.io.onVerdict?.(line, verdict);
    if (verdict.action === 'allow') this.io.toTarget(bytes);
    else this.io.toClient(`[pam] denied: ${verdict.message}\r\n`);
  }
}

/**
 * True when the shell would read on past the end of `text` for the same command: a quote is
 * still open or the text ends in a backslash-newline. Quoting as POSIX sh: '…' takes everything,
 * "…" and bare text honour backslash escapes, $'…' honours them too.
 */
export function openCommand(text: string): boolean {
  let quote: '' | "'" | '"' | '$' = '';
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (comment) {
      if (c === '\n') comment = false;
      continue;
    }
    if (quote === "'") {
      if (c === "'") quote = '';
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= text.length) return true;
      if (text[i + 1] === '\n' && i + 2 >= text.length && quote === '') return true;
      i++;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = '';
      continue;
    }
    if (quote === '$') {
      if (c === "'") quote = '';
      continue;
    }
    if (c === '#' && (i === 0 || /\s|;|&|\|/.test(text[i - 1]!))) comment = true;
    else if (c === "'") quote = text[i - 1] === '$' ? '$' : "'";
    else if (c === '"') quote = '"';
  }
  return quote !== '';
}
