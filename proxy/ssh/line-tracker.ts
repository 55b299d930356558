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
 * Skip policy on lines only while `inTrustedFullScreen`: the alternate screen was entered by a
 * full-screen program (vim, less, top) that the last allowed line started. An alternate screen
 * switched on by anything else (`printf '\033[?1049h'` at the prompt) earns no trust: lines are
 * read from it and judged as usual.
 */
import xh from '@xterm/headless';
import { basename, splitCommands } from '../../policies/shell-words.js';

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
  /** Every switch between the normal and the alternate screen, with the program that owns it. */
  onScreen?(change: ScreenChange): void;
}

/** A screen switch: `owner` is the full-screen program trusted with it, absent when none is. */
export interface ScreenChange { mode: 'alternate' | 'normal'; owner?: string }

/** Programs that draw on the alternate screen and whose keys are not shell lines. Not tmux, screen, mc: they host shells. */
const FULL_SCREEN = new Set(['vi', 'vim', 'nvim', 'view', 'vimdiff', 'rvim', 'nano', 'pico', 'emacs', 'less', 'more', 'most', 'man', 'top', 'htop', 'atop', 'btop', 'iotop', 'iftop', 'nmon']);
/** Wrappers that leave the full-screen program in charge of the terminal. */
const PLAIN_WRAPPERS = new Set(['sudo', 'doas', 'env', 'nice', 'time', 'command', 'exec']);

/** The full-screen program a command line starts, if it is one simple command of FULL_SCREEN (under plain wrappers only). */
export function fullScreenProgram(line: string): string | undefined {
  const cmds = splitCommands(line);
  if (cmds.length !== 1) return undefined;
  const c = cmds[0]!;
  const name = basename(c.argv[0] ?? '');
  if (c.dynamic || !FULL_SCREEN.has(name) || !c.wrappers.every((w) => PLAIN_WRAPPERS.has(w))) return undefined;
  return name;
}

/**
 * readline's incremental history search (Ctrl-R, Ctrl-S) draws `(reverse-i-search)`TEXT': LINE`
 * over the prompt, and Enter runs LINE. Returns LINE for each place TEXT could end (the search
 * text may itself hold `': `), first the likeliest; none when the line is not a search display.
 * The front may be cut (the prompt end is kept from before the search redrew the row).
 */
export function historySearchReadings(line: string): string[] {
  const m = /(?:reverse-|bck-|fwd-)?i-search\)?`/.exec(line);
  if (!m) return [];
  const out: string[] = [];
  for (let i = line.indexOf("': ", m.index + m[0].length - 1); i >= 0 && out.length < 8; i = line.indexOf("': ", i + 1)) {
    const rest = line.slice(i + 3);
    if (rest.trim()) out.push(rest);
  }
  return out;
}

/** How long input that came before any output waits for the target's first output (its prompt). */
const FIRST_OUTPUT_MS = 2000;

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
  /** The full-screen program the last allowed line started (it may switch to the alternate screen). */
  private candidateOwner: string | undefined;
  /** The program trusted with the alternate screen while it is on. */
  private screenOwner: string | undefined;
  private readonly createdAt = Date.now();
  /** Prompt texts seen in this session (`$`, `root@web:~#`), newest first, for withoutPrompt. */
  private prompts: string[] = [];
  /** Output write counts at keystrokes whose output has not all been parsed yet (oldest first). */
  private inputSeqs: number[] = [];

  constructor(opts: LineTrackerOptions = {}) {
    this.opts = { cols: 80, rows: 24, scrollback: 2000, settleMs: 40, maxWaitMs: 1000, promptSettleMs: 150, onScreen: () => {}, ...opts };
    this.term = new Terminal({ cols: this.opts.cols, rows: this.opts.rows, scrollback: this.opts.scrollback, allowProposedApi: true });
    this.term.buffer.onBufferChange((b) => {
      if (b.type === 'alternate') this.screenOwner = this.candidateOwner;
      else this.screenOwner = undefined;
      // A screen switch starts a new screen: the prompt end is taken again from what follows,
      // frozen at the first keystroke given after this output (it may already have come).
      const parsing = this.parsedSeq + 1;
      this.enterPressed();
      const first = this.inputSeqs.find((q) => q >= parsing);
      if (first !== undefined) this.freezeAtSeq = first;
      this.opts.onScreen({ mode: b.type, ...(this.screenOwner ? { owner: this.screenOwner } : {}) });
    });
  }

  /** The alternate screen is on (vim, less, top, or anything that printed the switch). */
  get inAlternateScreen(): boolean {
    return this.term.buffer.active.type === 'alternate';
  }

  /** The alternate screen is on and owned by a full-screen program an allowed line started: its keys are not shell lines. */
  get inTrustedFullScreen(): boolean {
    return this.inAlternateScreen && this.screenOwner !== undefined;
  }

  /** An Enter was allowed for `line`: remember whether it starts a full-screen program. */
  allowed(line: string): void {
    if (this.inTrustedFullScreen) return;
    this.candidateOwner = fullScreenProgram(line);
  }

  feedOutput(data: Uint8Array | string): void {
    if (this.disposed) return;
    const seq = ++this.writeSeq;
    this.lastOutputAt = Date.now();
    this.lastWrite = new Promise((resolve) => {
      this.term.write(typeof data === 'string' ? data : new Uint8Array(data), () => {
        this.parsedSeq = seq;
        while (this.inputSeqs.length && this.inputSeqs[0]! < seq) this.inputSeqs.shift();
        this.onParsed(seq);
        resolve();
      });
    });
  }

  /** User bytes about to be forwarded to the target (not the Enter itself). */
  feedInput(data: Uint8Array | string): void {
    if (this.disposed || data.length === 0) return;
    this.lastInputAt = Date.now();
    if (this.inputSeqs.length < 64 && this.inputSeqs[this.inputSeqs.length - 1] !== this.writeSeq) this.inputSeqs.push(this.writeSeq);
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
    await this.settle();
    if (this.state === 'awaiting') {
      if (this.provisional) this.adopt(this.provisional);
      else this.freeze();
    }
    const line = this.inTrustedFullScreen ? '' : this.readLine();
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
      if (this.disposed || signal?.aborted || this.state !== 'awaiting' || this.inTrustedFullScreen) return;
      await this.lastWrite;
      const now = Date.now();
      // Before the target's first output (a shell still starting), type-ahead waits for it, bounded.
      if (this.writeSeq === 0 && now - this.createdAt < FIRST_OUTPUT_MS) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
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

  /**
   * A signal key (Ctrl-C) has just been sent: the target answers with a fresh prompt (or the
   * program it stopped gives way to one), so the prompt end is taken again, as after an Enter.
   */
  interrupted(): void {
    if (this.disposed || this.inTrustedFullScreen) return;
    this.enterPressed();
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

  /**
   * The line with a shell prompt seen earlier in this session cut off its front, when it starts
   * with one: the prompt end can be misplaced (a program that drew on the normal screen, quit with
   * one key), and `$ rm x` must not pass as a command named `$`. Undefined when nothing to cut.
   */
  withoutPrompt(line: string): string | undefined {
    for (const p of this.prompts) {
      if (line.startsWith(p) && line.length > p.length) return line.slice(p.length).trimStart();
    }
    return undefined;
  }

  private adopt(p: PromptEnd): void {
    const t = p.text.trimEnd();
    if (/[$#>%❯»]$/.test(t) && t.length <= 200 && !this.prompts.includes(t)) {
      this.prompts.unshift(t);
      this.prompts.length = Math.min(this.prompts.length, 8);
    }
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

  /** Waits (bounded by maxWaitMs) until the echo of the last keys is on screen and output is quiet. */
  async settle(): Promise<void> {
    const start = Date.now();
    for (;;) {
      await this.lastWrite;
      const quiet = Date.now() - Math.max(this.lastOutputAt, this.lastInputAt);
      const left = this.opts.maxWaitMs - (Date.now() - start);
      // The echo of the last keystroke must be in: under load it can take far longer than settleMs.
      const echoed = this.lastOutputAt >= this.lastInputAt;
      if ((quiet >= this.opts.settleMs && echoed) || left <= 0 || this.disposed) break;
      await new Promise((r) => setTimeout(r, Math.min(this.opts.settleMs - quiet, left)));
    }
    await this.lastWrite;
  }

  /**
   * The whole logical line at the cursor, from column 0 of its first row (prompt included). The
   * gate judges it with a known prompt cut off too: the prompt end taken after an Enter can sit
   * right of text the shell redrew later (a search ended with Ctrl-J leaves the found line in
   * place, and an edit left of the old cursor is then outside the reading from the prompt end).
   */
  rowLine(): string {
    if (this.disposed || this.inTrustedFullScreen) return '';
    const buf = this.term.buffer.active;
    let top = buf.baseY + buf.cursorY;
    while (top > 0 && buf.getLine(top)?.isWrapped) top--;
    return this.rowsText(top, 0, buf.baseY + buf.cursorY);
  }

  private readLine(): string {
    const buf = this.term.buffer.active;
    const cursorRow = buf.baseY + buf.cursorY;
    const p = this.prompt;
    const promptRow = p && !p.marker.isDisposed ? p.marker.line : -1;
    // On an alternate screen nobody trusted (a printed switch), the marker rows do not follow the
    // shell's prompt: the prompt is found by its text, as when it scrolled out.
    if (!this.inAlternateScreen && promptRow >= 0 && promptRow <= cursorRow && cursorRow - promptRow < 200) return this.rowsText(promptRow, p!.col, cursorRow);
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
