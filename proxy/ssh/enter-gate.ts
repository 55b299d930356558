import { LineTracker } from './line-tracker.js';

/**
 * SEAM for interactive-shell line policy (the policy engineer's integration). Sits in the
 * client → target input path of pty shells: bytes flow through untouched until an Enter (CR or
 * LF); the Enter byte and everything after it are held until `onEnter(line)` settles. Allow
 * forwards the Enter; deny drops the line at the target (Ctrl-U, then an empty Enter for a
 * fresh prompt) and shows the message to the user. The line comes from a LineSource, by default
 * proxy/ssh/line-tracker.ts (the screen as the user sees it); while a full-screen program runs
 * (alternate screen) Enter passes without a check.
 *
 * Wiring: `startSshBroker(deps, listen, { onEnter: (auth) => hook | undefined })`. Without a
 * hook (today's default) no gate is created and input goes straight through.
 */
export type EnterVerdict = { action: 'allow' } | { action: 'deny'; message: string };
export type OnEnter = (line: string) => Promise<EnterVerdict>;

/** What the gate needs to know the line being entered; line-tracker.ts will provide a better one. */
export interface LineSource {
  input(data: Buffer): void;
  output(data: Buffer): void;
  /** The command line as the target will see it at Enter. */
  line(): string | Promise<string>;
  /** Called after each Enter (allowed or denied). */
  reset(): void;
  resize?(cols: number, rows: number): void;
  /** True while Enter is not a shell line (full-screen program). */
  skip?(): boolean;
  dispose?(): void;
}

/** The default source: the headless-terminal LineTracker. */
export function trackedLine(size: { cols: number; rows: number }): LineSource {
  const t = new LineTracker({ cols: size.cols, rows: size.rows });
  return {
    input: (d) => t.feedInput(d),
    output: (d) => t.feedOutput(d),
    line: () => t.currentLine(),
    reset: () => {},
    resize: (c, r) => t.resize(c, r),
    skip: () => t.inAlternateScreen,
    dispose: () => t.dispose(),
  };
}

/** Naive line source: printable input, Backspace/DEL and Ctrl-U; ignores cursor movement. */
export class TypedLine implements LineSource {
  private buf = '';
  private readonly dec = new TextDecoder();
  input(data: Buffer): void {
    for (const ch of this.dec.decode(data, { stream: true })) {
      if (ch === '\x7f' || ch === '\b') this.buf = this.buf.slice(0, -1);
      else if (ch === '\x15') this.buf = '';
      else if (ch >= ' ') this.buf += ch;
    }
  }
  output(): void {}
  line(): string {
    return this.buf;
  }
  reset(): void {
    this.buf = '';
  }
}

export class EnterGate {
  private queue: Buffer[] = [];
  private busy = false;

  constructor(
    private readonly hook: OnEnter,
    private readonly lines: LineSource,
    private readonly io: {
      toTarget(data: Buffer): void;
      toClient(text: string): void;
      pauseClient(): void;
      resumeClient(): void;
      onVerdict?(line: string, verdict: EnterVerdict): void;
    },
  ) {}

  /** Client → target bytes of a pty shell. */
  input(data: Buffer): void {
    this.queue.push(data);
    if (!this.busy) void this.drain();
  }

  /** Target → client bytes (for line trackers that read the echo). */
  output(data: Buffer): void {
    this.lines.output(data);
  }

  resize(cols: number, rows: number): void {
    this.lines.resize?.(cols, rows);
  }

  dispose(): void {
    this.lines.dispose?.();
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length) {
        const data = this.queue.shift()!;
        let start = 0;
        for (let i = 0; i < data.length; i++) {
          if (data[i] !== 0x0d && data[i] !== 0x0a) continue;
          const before = data.subarray(start, i);
          if (before.length) {
            this.lines.input(before);
            this.io.toTarget(before);
          }
          this.io.pauseClient();
          let line = '';
          let verdict: EnterVerdict;
          try {
            if (this.lines.skip?.()) verdict = { action: 'allow' };
            else {
              line = await this.lines.line();
              verdict = line.trim() ? await this.hook(line) : { action: 'allow' };
            }
          } catch (err) {
            verdict = { action: 'deny', message: `policy check failed: ${(err as Error).message}` };
          } finally {
            this.io.resumeClient();
          }
          this.io.onVerdict?.(line, verdict);
          this.lines.reset();
          if (verdict.action === 'allow') this.io.toTarget(data.subarray(i, i + 1));
          else {
            this.io.toTarget(Buffer.from('\x15\r'));
            this.io.toClient(`\r\n[pam] denied: ${verdict.message}\r\n`);
          }
          start = i + 1;
        }
        const rest = data.subarray(start);
        if (rest.length) {
          this.lines.input(rest);
          this.io.toTarget(rest);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
