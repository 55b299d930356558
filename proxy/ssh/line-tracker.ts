/**
 * The interactive-shell command line, read from the screen the way the user sees it.
 *
 * A headless terminal (xterm) is fed the target's output. The prompt's end is the cursor
 * position once output has settled after the previous Enter (frozen at the first keystroke,
 * see `feedInput`). At Enter, the command line is the text from there to the end of the
 * cursor's logical line (wrapped rows joined), so tab completion, history recall, backspace,
 * Ctrl-U and cursor edits count exactly as the shell drew them.
 *
 * Usage by the broker, per pty shell channel:
 *   target output  → tracker.feedOutput(buf)
 *   user input     → tracker.feedInput(buf) for bytes forwarded before an Enter
 *   Enter pressed  → const line = await tracker.currentLine()  (then allow / deny the Enter)
 *   window-change  → tracker.resize(cols, rows)
 * Skip policy on lines while `inAlternateScreen` (vim, less, top: not a shell prompt).
 */
import xh from '@xterm/headless';

const { Terminal } = xh;
type Term = InstanceType<typeof Terminal>;
type Marker = NonNullable<ReturnType<Term['registerMarker']>>;

export interface LineTrackerOptions {
  cols?: number;
  rows?: number;
  /** Lines kept above the screen; the prompt is found through a marker that survives scrolling. */
  scrollback?: number;
  /** currentLine() waits for this much quiet (no output, no input) so the echo of the last keys is on screen. Default 40 ms. */
  settleMs?: number;
  /** …and for output newer than the last keystroke (its echo), but never longer than this in total. Default 1000 ms (the wait a password prompt's Enter pays). */
  maxWaitMs?: number;
  /** Without input notifications, output quiet this long after an Enter is taken as "prompt shown". Default 150 ms. */
  promptSettleMs?: number;
}

interface PromptEnd { marker: Marker; col: number; text: string }

export class LineTracker {
  private readonly term: Term;
  private readonly opts: Required<LineTrackerOptions>;
  private writeSeq = 0;
  private parsedSeq = 0;
  private lastWrite: Promise<void> = Promise.resolve();
  private lastOutputAt = 0;
  private lastInputAt = 0;
  private lastEnterAt = 0;
  /** awaiting: after an Enter, the next prompt is coming. editing: the prompt end is known. */
  private state: 'awaiting' | 'editing' = 'awaiting';
  private freezeAtSeq: number | undefined;
  private prompt: PromptEnd | undefined;
  private provisional: PromptEnd | undefined;
  private promptTimer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(opts: LineTrackerOptions = {}) {
    this.opts = { cols: 80, rows: 24, scrollback: 2000, settleMs: 40, maxWaitMs: 1000, promptSettleMs: 150, ...opts };
    this.term = new Terminal({ cols: this.opts.cols, rows: this.opts.rows, scrollback: this.opts.scrollback, allowProposedApi: true });
  }

  /** Full-screen programs (vim, less, top) switch to the alternate screen: their keys are not shell lines. */
  get inAlternateScreen(): boolean {
    return this.term.buffer.active.type === 'alternate';
  }

  feedOutput(data: Uint8Array | string): void {
    if (this.disposed) return;
    const seq = ++this.writeSeq;
    this.lastOutputAt = Date.now();
    this.lastWrite = new Promise((resolve) => {
      this.term.write(typeof data === 'string' ? data : new Uint8Array(data), () => {
        this.parsedSeq = seq;
        this.onParsed(seq);
        resolve();
      });
    });
  }

  /** User bytes about to be forwarded to the target (not the Enter itself). */
  feedInput(data: Uint8Array | string): void {
    if (this.disposed || data.length === 0) return;
    this.lastInputAt = Date.now();
    if (this.state !== 'awaiting' || this.freezeAtSeq !== undefined) return;
    // The prompt is whatever output came before the first keystroke after an Enter.
    this.freezeAtSeq = this.writeSeq;
    if (this.parsedSeq >= this.freezeAtSeq) this.freeze();
  }

  resize(cols: number, rows: number): void {
    if (this.disposed || !(cols > 0 && rows > 0)) return;
    this.term.resize(Math.min(Math.floor(cols), 1000), Math.min(Math.floor(rows), 1000));
  }

  /**
   * The command line at Enter. Waits (bounded) for the echo of the last keys, then reads the
   * screen. Marks the Enter: the next prompt end is taken from the output that follows.
   */
  async currentLine(): Promise<string> {
    if (this.disposed) return '';
    const start = Date.now();
    for (;;) {
      await this.lastWrite;
      const quiet = Date.now() - Math.max(this.lastOutputAt, this.lastInputAt);
      const left = this.opts.maxWaitMs - (Date.now() - start);
      // The echo of the last keystroke must be in: under load it can take far longer than settleMs.
      const echoed = this.lastOutputAt >= this.lastInputAt;
      if ((quiet >= this.opts.settleMs && echoed) || left <= 0) break;
      await new Promise((r) => setTimeout(r, Math.min(this.opts.settleMs - quiet, left)));
    }
    await this.lastWrite;
    if (this.state === 'awaiting') {
      if (this.provisional) this.adopt(this.provisional);
      else this.freeze();
    }
    const line = this.inAlternateScreen ? '' : this.readLine();
    this.enterPressed();
    return line;
  }

  /**
   * After an Enter: resolves once the shell looks ready for the next line, so a pasted block or
   * type-ahead is judged line by line against the right prompt. Ready when output came after the
   * Enter and went quiet with the cursor behind a prompt that ends like the last one (`$ `, `# `),
   * or when everything has been quiet for `idleMs` (a prompt we do not recognise, a silent
   * command, a program reading stdin). Immediately outside "awaiting" and in the alternate screen.
   */
  async promptReady(signal?: AbortSignal, idleMs = 500): Promise<void> {
    for (;;) {
      if (this.disposed || signal?.aborted || this.state !== 'awaiting' || this.inAlternateScreen) return;
      await this.lastWrite;
      const now = Date.now();
      const quiet = now - this.lastOutputAt;
      if (this.lastOutputAt > this.lastEnterAt && quiet >= this.opts.settleMs && this.atKnownPrompt()) return;
      if (quiet >= idleMs && now - this.lastEnterAt >= idleMs) return;
      await new Promise<void>((r) => {
        const done = () => { clearTimeout(t); signal?.removeEventListener('abort', done); r(); };
        const t = setTimeout(done, 20);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** The Enter (or the proxy's replacement for it) has just been sent to the target. */
  entered(): void {
    this.lastEnterAt = Date.now();
  }

  /**
   * Waits (bounded by maxWaitMs) for the target's answer to something just sent: output newer
   * than this call, then quiet for settleMs.
   */
  async quiet(): Promise<void> {
    const start = Date.now();
    for (;;) {
      await this.lastWrite;
      const now = Date.now();
      const left = this.opts.maxWaitMs - (now - start);
      if (left <= 0 || this.disposed) return;
      if (this.lastOutputAt >= start && now - this.lastOutputAt >= this.opts.settleMs) return;
      await new Promise((r) => setTimeout(r, Math.min(10, left)));
    }
  }

  private atKnownPrompt(): boolean {
    const prev = this.prompt?.text ?? '';
    if (prev.trim().length === 0) return false;
    const buf = this.term.buffer.active;
    const cur = buf.getLine(buf.baseY + buf.cursorY)?.translateToString(false, 0, buf.cursorX) ?? '';
    if (cur === prev) return true;
    // `cd` changes a prompt showing the directory; its last two characters (`$ `, `# `, `> `) stay.
    const tail = prev.slice(-2);
    return /[$#>%❯»] ?$/.test(tail) && cur.endsWith(tail);
  }

  dispose(): void {
    this.disposed = true;
    if (this.promptTimer) clearTimeout(this.promptTimer);
    this.term.dispose();
  }

  private onParsed(seq: number): void {
    if (this.state !== 'awaiting') return;
    if (this.freezeAtSeq !== undefined) {
      if (seq >= this.freezeAtSeq) this.freeze();
      return;
    }
    // No keystroke yet: remember where output paused, in case input is never reported.
    if (this.promptTimer) clearTimeout(this.promptTimer);
    this.promptTimer = setTimeout(() => {
      if (this.state === 'awaiting' && this.freezeAtSeq === undefined && !this.disposed) {
        this.provisional?.marker.dispose();
        this.provisional = this.here();
      }
    }, this.opts.promptSettleMs);
    this.promptTimer.unref?.();
  }

  private here(): PromptEnd | undefined {
    const buf = this.term.buffer.active;
    const marker = this.term.registerMarker(0);
    if (!marker) return undefined;
    const text = buf.getLine(buf.baseY + buf.cursorY)?.translateToString(false, 0, buf.cursorX) ?? '';
    return { marker, col: buf.cursorX, text };
  }

  private freeze(): void {
    const p = this.here();
    if (p) this.adopt(p);
    else this.state = 'editing';
  }

  private adopt(p: PromptEnd): void {
    if (this.prompt && this.prompt !== p) this.prompt.marker.dispose();
    if (this.provisional && this.provisional !== p) this.provisional.marker.dispose();
    this.prompt = p;
    this.provisional = undefined;
    this.state = 'editing';
    if (this.promptTimer) clearTimeout(this.promptTimer);
  }

  private enterPressed(): void {
    this.state = 'awaiting';
    this.lastEnterAt = Date.now();
    this.freezeAtSeq = undefined;
    this.provisional?.marker.dispose();
    this.provisional = undefined;
  }

  private readLine(): string {
    const buf = this.term.buffer.active;
    const cursorRow = buf.baseY + buf.cursorY;
    const p = this.prompt;
    const promptRow = p && !p.marker.isDisposed ? p.marker.line : -1;
    if (promptRow >= 0 && promptRow <= cursorRow && cursorRow - promptRow < 200) return this.rowsText(promptRow, p!.col, cursorRow);
    // The prompt row is gone (screen cleared, scrolled out): find the prompt text near the cursor.
    let top = cursorRow;
    while (top > 0 && buf.getLine(top)?.isWrapped) top--;
    const promptText = p?.text.trimEnd() ?? '';
    for (let r = top; r >= Math.max(0, top - 50) && promptText; r--) {
      const text = buf.getLine(r)?.translateToString(false) ?? '';
      if (text.startsWith(promptText)) return this.rowsText(r, p!.text.length, cursorRow);
    }
    return this.rowsText(top, 0, cursorRow);
  }

  /** Text from (row, col) to the end of the logical line holding `cursorRow`. */
  private rowsText(row: number, col: number, cursorRow: number): string {
    const buf = this.term.buffer.active;
    let last = Math.max(row, cursorRow);
    while (buf.getLine(last + 1)?.isWrapped) last++;
    let out = '';
    for (let r = row; r <= last; r++) {
      const line = buf.getLine(r);
      if (!line) break;
      const text = line.translateToString(false, r === row ? col : 0);
      if (r > row) {
        // A row the terminal wrapped, or one the shell filled to the margin, continues the line.
        const prev = buf.getLine(r - 1)!.translateToString(true);
        if (!line.isWrapped && prev.length < this.term.cols) out = out.trimEnd() + '\n';
      }
      out += text;
    }
    return out.trimEnd();
  }
}
