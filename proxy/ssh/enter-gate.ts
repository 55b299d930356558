import { TypedLine } from '../../recorder/typed-line.js';
import { historySearchReadings, LineTracker, type ScreenChange } from './line-tracker.js';

/**
 * The interactive-shell line gate. Sits in the client → target input path of pty sessions:
 * bytes flow through until an Enter (CR, LF or Ctrl-O); the Enter and everything after it are held
 * until `onEnter(line)` settles. Allow forwards the Enter; deny drops the line at the target
 * (Ctrl-G Ctrl-E Ctrl-U, so text right of the cursor goes too, then an empty Enter for a fresh prompt)
 * and shows the message to the user. After every Enter, input waits until the next prompt is
 * on screen, so a pasted block or type-ahead is judged line by line against the right prompt.
 * Interrupt keys (Ctrl-C, Ctrl-\, Ctrl-Z, Ctrl-D) end that wait and cancel a pending review;
 * the ones that raise a signal then start a wait of their own for what is typed after them.
 *
 * The line comes from a LineSource, by default proxy/ssh/line-tracker.ts (the screen as the
 * user sees it). While a full-screen program that an allowed line started owns the alternate
 * screen (vim, less, top) Enter passes unchecked; an alternate screen nobody trusted owns (a
 * printed `ESC [?1049h`) is judged like the prompt. Input that arrives before the target's first
 * prompt (type-ahead, `printf 'cmd\n' | ssh -tt`) waits for it and is then judged line by line.
 * Input the target does not echo (`stty -echo`) is judged from the keystrokes instead: see
 * TypedLine (recorder/typed-line.ts) and `unechoed` below.
 *
 * Wiring: startSshBroker uses the policy hook from shell-policy.ts when deps.policy is present;
 * `opts.onEnter` replaces it (tests).
 */
/**
 * `allowedBy`: the policy allowed the line outright (not an alert, not an approved review) by
 * this rule, or `default_action`; the recording gets an `allowed (RULE): LINE` marker for it.
 * `approved`: an approver allowed it (a review hold).
 */
export type EnterVerdict = { action: 'allow'; allowedBy?: string; approved?: boolean } | { action: 'deny'; message: string; rule?: string };

export interface EnterIo {
  /** A line for the user's terminal (not sent to the target, not recorded as output). */
  notify(text: string): void;
  /** Aborted when the user presses an interrupt key or the channel ends. */
  signal: AbortSignal;
  /**
   * The line was not echoed by the target (screen empty, keystrokes not): it may be a password,
   * so it must not be shown back or written down; it is judged like any line all the same.
   */
  unechoed?: boolean;
  /** Only a rule may stop the line; the default action does not (a second, less exact reading). */
  rulesOnly?: boolean;
}

export type OnEnter = (line: string, io: EnterIo) => Promise<EnterVerdict>;

/** What the gate needs to know the line being entered. */
export interface LineSource {
  input(data: Buffer): void;
  output(data: Buffer): void;
  /** The command line as the target will see it at Enter. */
  line(): string | Promise<string>;
  /** Called after each Enter (allowed or denied). */
  reset(): void;
  resize?(cols: number, rows: number): void;
  /** True while Enter is not a shell line (a trusted full-screen program owns the screen). */
  skip?(): boolean;
  /** The whole logical line at the cursor from its first column, prompt included (read right after line()). */
  rowLine?(): string;
  /** Resolves when the echo of the keys sent so far is on screen (bounded). */
  settle?(): Promise<void>;
  /** The line with a known prompt cut off its front, if it starts with one (judged too). */
  withoutPrompt?(line: string): string | undefined;
  /** The Enter of `line` was allowed (it may start a full-screen program). */
  allowed?(line: string): void;
  /** The Enter (or the clearing Enter of a denied line) has been sent to the target. */
  entered?(): void;
  /** Resolves when the target's first prompt is on screen (or it stayed silent, bounded). */
  firstPrompt?(signal: AbortSignal): Promise<void>;
  /** A signal key (Ctrl-C, Ctrl-\, Ctrl-Z) has been sent: the next prompt is coming, as after an Enter. */
  interrupted?(): void;
  /** Resolves when the next prompt is on screen after an Enter or a signal key. */
  promptReady?(signal: AbortSignal): Promise<void>;
  /** Resolves when the target's output has been quiet briefly. */
  quiet?(): Promise<void>;
  dispose?(): void;
}

/** The default source: the headless-terminal LineTracker. */
export function trackedLine(size: { cols: number; rows: number }, onScreen?: (change: ScreenChange) => void): LineSource {
  const t = new LineTracker({ cols: size.cols, rows: size.rows, ...(onScreen ? { onScreen } : {}) });
  return {
    input: (d) => t.feedInput(d),
    output: (d) => t.feedOutput(d),
    line: () => t.currentLine(),
    reset: () => {},
    resize: (c, r) => t.resize(c, r),
    skip: () => t.inTrustedFullScreen,
    allowed: (line) => t.allowed(line),
    withoutPrompt: (line) => t.withoutPrompt(line),
    rowLine: () => t.rowLine(),
    settle: () => t.settle(),
    entered: () => t.entered(),
    interrupted: () => t.interrupted(),
    promptReady: (s) => t.promptReady(s),
    firstPrompt: (s) => t.promptReady(s),
    quiet: () => t.quiet(),
    dispose: () => t.dispose(),
  };
}

/** Keys that interrupt whatever runs: they end a prompt wait and cancel a pending review. */
const INTERRUPT = new Set([0x03, 0x04, 0x1a, 0x1c]);
/** Interrupt keys the tty turns into a signal (Ctrl-C, Ctrl-\, Ctrl-Z): what follows waits for the target's answer. */
const SIGNAL = new Set([0x03, 0x1a, 0x1c]);
/** The longest keys wait for the target's answer to a signal key. */
const SIGNAL_WAIT_MS = 2000;
/**
 * Keys that run the line as Enter does: CR, LF, and Ctrl-O (readline's operate-and-get-next,
 * bound by default in bash: it runs the line and brings back the next one from history; zsh's
 * accept-line-and-down-history). Esc a and Esc A are Enters too (metaAccept).
 */
const ENTER = new Set([0x0d, 0x0a, 0x0f]);
/**
 * Readline keys that run what is on the line without an Enter, bound by default in bash: Ctrl-X
 * Ctrl-E (edit-and-execute-command: the line goes to $EDITOR and runs when it exits), Esc Ctrl-E,
 * which Alt-Ctrl-E sends (shell-expand-line: runs the line's command substitutions), Esc #
 * (insert-comment: given a count, `Esc 1 Esc #`, it takes the `#` off a commented line and runs
 * it) and Ctrl-X ( (start-kbd-macro: the macro records the Enter of an allowed line, and Ctrl-X e
 * replays it behind whatever is typed then). Their last key is replaced with Ctrl-G (abort) and
 * the user is told. (bash 5.2 inserts the 8-bit byte 0x85 as a character; it is not
 * Meta-Ctrl-E there, checked in C and UTF-8 locales.)
 */
function runsWithoutEnter(prev: number, b: number): string | undefined {
  if (prev === 0x18) return b === 0x05 ? 'Ctrl-X Ctrl-E' : b === 0x28 ? 'Ctrl-X (' : undefined;
  if (prev === 0x1b) return b === 0x05 ? 'Esc Ctrl-E' : b === 0x23 ? 'Esc #' : undefined;
  return undefined;
}
/** Esc a / Esc A (Alt-a): zsh's accept-and-hold and accept-line-and-down-history run the line; an Enter too. */
function metaAccept(prev: number, b: number): boolean {
  return prev === 0x1b && (b === 0x61 || b === 0x41);
}
/** Ctrl-X * and Ctrl-X g / G: zsh's expand-word and list-expand, which run substitutions as Tab does. */
function expandKey(prev: number, b: number): boolean {
  return prev === 0x18 && (b === 0x2a || b === 0x67 || b === 0x47);
}
const ABORT = 0x07;
const TAB = 0x09;
/** A command, process or backtick substitution: zsh runs it when Tab expands the word. */
const SUBSTITUTION = /\$\(|`|<\(|>\(/;
/** Held input above this pauses the client (the SSH window then stops the sender). */
const MAX_QUEUED = 64 * 1024;
/**
 * Ctrl-G (abort), Ctrl-E (end of line), Ctrl-U (kill to start): clears the whole readline line,
 * and in a cooked tty the KILL char clears it all. The abort ends a key prefix the user left
 * pending (Ctrl-X, Esc), which would otherwise turn the Ctrl-E into Ctrl-X Ctrl-E or Esc Ctrl-E
 * and run the denied line.
 */
const CLEAR_LINE = Buffer.from('\x07\x05\x15');

export class EnterGate {
  private queue: Buffer[] = [];
  private queued = 0;
  private busy = false;
  private paused = false;
  /** After an Enter: input waits for the next prompt. */
  private awaitingPrompt = false;
  /** The wait for the prompt follows a signal key, not an Enter (bounded by SIGNAL_WAIT_MS). */
  private afterSignal = false;
  /** Input that comes before the target's first prompt waits for it (type-ahead at login). */
  private beforeFirstPrompt = true;
  private drained: Promise<void> = Promise.resolve();
  private interrupt = new AbortController();
  private disposed = false;
  private readonly typed = new TypedLine();
  /** The last byte sent to the target, for key sequences split across writes. */
  private lastKey = 0;
  /** A Ctrl-R or Ctrl-S search is open: only printable keys, Backspace and more Ctrl-R/S since. */
  private searching = false;
  private readonly typedDecoder = new TextDecoder();

  constructor(
    private readonly hook: OnEnter,
    private readonly lines: LineSource,
    private readonly io: {
      toTarget(data: Buffer): void;
      toClient(text: string): void;
      pauseClient(): void;
      resumeClient(): void;
      onVerdict?(line: string, verdict: EnterVerdict): void;
      /** User bytes as they are passed on to the target (or, for a denied Enter, dropped): the recording's input. */
      recordInput?(data: Buffer): void;
    },
  ) {}

  /** Resolves once every byte received so far has been judged and passed on or dropped (client EOF waits for it). */
  idle(): Promise<void> {
    return this.drained;
  }

  /** Client → target bytes of a pty session. */
  input(data: Buffer): void {
    if (this.disposed) return;
    this.queue.push(data);
    this.queued += data.length;
    if (data.some((b) => INTERRUPT.has(b))) this.interrupt.abort();
    if (this.queued > MAX_QUEUED && !this.paused) {
      this.paused = true;
      this.io.pauseClient();
    }
    if (!this.busy) this.drained = this.drain();
  }

  /** Target → client bytes (for line trackers that read the echo). */
  output(data: Buffer): void {
    this.lines.output(data);
  }

  resize(cols: number, rows: number): void {
    this.lines.resize?.(cols, rows);
  }

  dispose(): void {
    if (this.disposed) return;
    // Keys still held (never sent to the target) are still the user's input: the recording keeps them.
    for (const d of this.queue.splice(0)) this.io.recordInput?.(d);
    this.disposed = true;
    this.interrupt.abort();
    this.lines.dispose?.();
  }

  private forward(data: Buffer): void {
    if (!this.lines.skip?.()) data = this.readKeys(data);
    if (data.length) this.lastKey = data[data.length - 1]!;
    this.lines.input(data);
    this.typed.feed(this.typedDecoder.decode(data, { stream: true }));
    this.io.recordInput?.(data);
    this.io.toTarget(data);
  }

  /** Bytes after a key the gate stops at go back to the head of the queue. */
  private requeue(rest: Buffer): void {
    if (!rest.length) return;
    this.queue.unshift(rest);
    this.queued += rest.length;
  }

  /**
   * One pass over keys for the shell: whether a Ctrl-R/Ctrl-S search is open after them, and
   * `data` with the keys of runsWithoutEnter made harmless (each one denied and told).
   */
  private readKeys(data: Buffer): Buffer {
    let out: Buffer | undefined;
    for (let i = 0; i < data.length; i++) {
      const b = data[i]!;
      if (b === 0x12 || b === 0x13) this.searching = true;
      else if (b < 0x20 && b !== 0x08) this.searching = false;
      const key = runsWithoutEnter(i > 0 ? data[i - 1]! : this.lastKey, b);
      if (!key) continue;
      out ??= Buffer.from(data);
      out[i] = ABORT;
      const message = `${key} runs the line without Enter, which the proxy cannot check; it is not available here`;
      this.io.onVerdict?.(`(key) ${key}`, { action: 'deny', message });
      this.io.toClient(`\r\n[pam] denied: ${message}\r\n`);
    }
    return out ?? data;
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length && !this.disposed) {
        if (this.beforeFirstPrompt) {
          if (!this.interrupt.signal.aborted) await this.lines.firstPrompt?.(this.interrupt.signal);
          this.beforeFirstPrompt = false;
        }
        if (this.awaitingPrompt) {
          // After a signal key the wait is bounded: a program that ignores it and keeps printing
          // must not hold the keyboard (the race it guards against lasts milliseconds).
          const signal = this.afterSignal ? AbortSignal.any([this.interrupt.signal, AbortSignal.timeout(SIGNAL_WAIT_MS)]) : this.interrupt.signal;
          if (!this.interrupt.signal.aborted) await this.lines.promptReady?.(signal);
          this.awaitingPrompt = false;
          this.afterSignal = false;
        }
        if (this.interrupt.signal.aborted) this.interrupt = new AbortController();
        const data = this.queue.shift()!;
        this.queued -= data.length;
        const prevOf = (i: number) => (i > 0 ? data[i - 1]! : this.lastKey);
        const enter = data.findIndex((b, i) => ENTER.has(b) || SIGNAL.has(b) || b === TAB || metaAccept(prevOf(i), b) || expandKey(prevOf(i), b));
        if (enter < 0) {
          this.forward(data);
          continue;
        }
        if (data[enter] === TAB || expandKey(prevOf(enter), data[enter]!)) {
          const prefixed = data[enter] !== TAB;
          if (enter > 0) this.forward(data.subarray(0, enter));
          this.requeue(data.subarray(enter + 1));
          await this.handleTab(data[enter]!, prefixed);
          continue;
        }
        if (SIGNAL.has(data[enter]!)) {
          // A signal key goes through at once; what follows it waits for the target's answer
          // (bash drops the first key it reads while handling a SIGINT, echo and all, so a line
          // judged from the screen must not be typed into that moment).
          this.forward(data.subarray(0, enter + 1));
          this.requeue(data.subarray(enter + 1));
          this.lines.interrupted?.();
          this.awaitingPrompt = true;
          this.afterSignal = true;
          continue;
        }
        if (enter > 0) this.forward(data.subarray(0, enter));
        // The rest goes back to the head of the queue: it waits for the next prompt.
        this.requeue(data.subarray(enter + 1));
        await this.handleEnter(data.subarray(enter, enter + 1));
        this.awaitingPrompt = true;
        if (this.paused && this.queued <= MAX_QUEUED / 2) {
          this.paused = false;
          this.io.resumeClient();
        }
      }
    } finally {
      this.busy = false;
      if (this.paused && this.queued <= MAX_QUEUED / 2) {
        this.paused = false;
        this.io.resumeClient();
      }
    }
  }

  /**
   * Tab (or Ctrl-X *, g, G) on a line that holds a substitution: zsh expands the word, running the
   * `$(…)`, backticks or `<(…)` in it (bash does not), so the line is judged first, as typed and
   * as on screen. Refused: the Tab is not sent, and the user is told why.
   */
  private async handleTab(key: number, prefixed: boolean): Promise<void> {
    if (this.lines.skip?.()) return this.forward(Buffer.of(key));
    const readings = () => {
      const row = this.lines.rowLine?.() ?? '';
      return [this.typed.line(), this.lines.withoutPrompt?.(row) ?? row].filter((r) => SUBSTITUTION.test(r));
    };
    // The usual Tab goes on at once: the keys typed cover an echo still on its way.
    if (!readings().length) return this.forward(Buffer.of(key));
    await this.lines.settle?.();
    if (this.disposed) return;
    let verdict: EnterVerdict;
    let judged = '';
    try {
      ({ verdict, judged } = await this.judgeAll([...new Set(readings())], { notify: (t) => this.io.toClient(t), signal: this.interrupt.signal }));
    } catch (err) {
      verdict = { action: 'deny', message: `policy check failed: ${(err as Error).message}` };
    }
    if (this.disposed) return;
    if (verdict.action === 'allow') return this.forward(Buffer.of(key));
    // After Ctrl-X the prefix is still open at the target: an abort closes it.
    if (prefixed) this.forward(Buffer.of(ABORT));
    const message = `${verdict.message} (${prefixed ? 'that key' : 'Tab'} can run the substitutions on this line)`;
    this.io.onVerdict?.(judged, { ...verdict, message });
    this.io.toClient(`\r\n[pam] denied: ${message}\r\n`);
  }

  /** Judges each reading in turn; the first that is not allowed decides. */
  private async judgeAll(readings: string[], io: EnterIo): Promise<{ verdict: EnterVerdict; judged: string }> {
    let verdict: EnterVerdict = { action: 'allow' };
    let judged = '';
    for (const r of readings) {
      judged = r;
      verdict = await this.hook(r, io);
      if (verdict.action !== 'allow') break;
    }
    return { verdict, judged };
  }

  private async handleEnter(enter: Buffer): Promise<void> {
    let line = '';
    let verdict: EnterVerdict;
    /** The reading of the line that decides which program it starts. */
    let started: string | undefined;
    /** The line with a known prompt cut off its front. */
    let bare: string | undefined;
    // Escape sequences (arrows) are dropped: as a fallback for an empty screen line, the typed
    // characters are still the safer thing to judge than nothing.
    const typed = this.typed.line();
    this.typed.reset();
    const searching = this.searching;
    this.searching = false;
    try {
      if (this.lines.skip?.()) verdict = { action: 'allow' };
      else {
        line = await this.lines.line();
        const io = { notify: (t: string) => this.io.toClient(t), signal: this.interrupt.signal };
        // Ctrl-R shows `(reverse-i-search)`TEXT': LINE` and Enter runs LINE: what runs is judged,
        // every reading of it (TEXT may hold `': ` too), and not the search prompt around it.
        // Only while a search the user opened is on: a line that merely looks like one is read as typed.
        const found = searching ? historySearchReadings(line) : [];
        if (found.length) {
          verdict = (await this.judgeAll(found, io)).verdict;
          line = found[0]!;
        } else if (line.trim()) {
          verdict = await this.hook(line, io);
          // A misplaced prompt end must not hide the command behind it: both readings are judged.
          bare = this.lines.withoutPrompt?.(line);
          if (verdict.action === 'allow' && bare?.trim()) {
            verdict = await this.hook(bare, io);
            started = bare;
          }
        } else verdict = { action: 'allow' };
        if (!found.length) {
          // And the whole row behind a known prompt: the prompt end can sit right of text the
          // shell redrew after it was taken (a Ctrl-J search end, then an edit at the line start),
          // even right of all of it (then the reading from the prompt end is empty).
          const row = this.lines.rowLine?.();
          const fromRow = row ? this.lines.withoutPrompt?.(row) : undefined;
          if (verdict.action === 'allow' && fromRow?.trim() && fromRow !== line && fromRow !== bare) {
            verdict = await this.hook(fromRow, io);
            if (verdict.action !== 'allow' || !line.trim()) line = fromRow;
          }
        }
        if (line.trim()) {
          // The screen is the target's output: behind `stty -echo` a line printed at the cursor can
          // show something other than the keys the shell got. Keys that differ from what was judged
          // meet the rules too (not the default: tab completion and history make the keys alone a
          // poor reading of an echoed line), without their text being shown back or told.
          // A line an approver approved as shown is not read again (its keys would need approval too).
          if (verdict.action === 'allow' && !verdict.approved && differs(typed, started ?? line)) {
            const keys = await this.hook(typed, { ...io, unechoed: true, rulesOnly: true });
            if (keys.action === 'deny') {
              verdict = keys;
              line = '';
            }
          }
        }
        else if (typed.trim()) verdict = await this.hook(typed, { ...io, unechoed: true });
        else verdict = { action: 'allow' };
      }
    } catch (err) {
      verdict = { action: 'deny', message: `policy check failed: ${(err as Error).message}` };
    }
    if (this.disposed) return;
    // An allowed line is told as the reading that was judged last (a misplaced prompt cut off).
    this.io.onVerdict?.(verdict.action === 'allow' && started ? started : line, verdict);
    this.lines.reset();
    this.io.recordInput?.(enter);
    if (verdict.action === 'allow') {
      this.lines.allowed?.(started ?? (line || typed));
      this.lastKey = enter[0]!;
      this.io.toTarget(enter);
      this.lines.entered?.();
      return;
    }
    this.io.toTarget(CLEAR_LINE);
    await this.lines.quiet?.();
    this.io.toClient(`\r\n[pam] denied: ${verdict.message}`);
    this.io.toTarget(Buffer.from('\r'));
    this.lastKey = 0x0d;
    this.lines.entered?.();
  }
}

/** The keys typed read as a different line than the one judged (blank keys never differ). */
function differs(typed: string, judged: string): boolean {
  const norm = (t: string) => t.trim().replace(/\s+/g, ' ');
  return norm(typed) !== '' && norm(typed) !== norm(judged);
}
