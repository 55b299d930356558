import type { AsciicastWriter } from '../../recorder/asciicast-writer.js';

/** Escape sequences and control characters: kept as typed, never masked. */
const CONTROL = /\u001b(?:\[[0-?]*[ -/]*[@-~]|O.|.)|[\u0000-\u001f\u007f]/g;

interface PendingInput {
  at: number;
  text: string;
}

/**
 * Feeds one channel's terminal bytes to the connection's recording. Each channel has its own
 * pair of streaming TextDecoders, so a UTF-8 sequence split across chunks survives and
 * channels do not corrupt each other's sequences.
 *
 * Echo masking (pty channels): keystrokes are held until the next output from the target. A
 * printable run the target echoes is found at the start of that output (after skipping
 * escape sequences), in typing order; a run that is not there, or for which no output arrives
 * within `echoDeadlineMs`, was not echoed (a sudo or `read -s` prompt) and is written as `*`
 * per character. Control keys (Enter, arrows, Ctrl-C) are always kept. The failure mode is
 * over-masking (an echo delayed past the deadline, unrelated output racing a keystroke): the
 * safe side for secrets. Output is never delayed to the client; only the `i` events wait.
 */
export class ChannelTap {
  private readonly outDec = new TextDecoder('utf-8');
  private readonly inDec = new TextDecoder('utf-8');
  private pending: PendingInput[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rec: AsciicastWriter,
    private readonly opts: { maskUnechoed: boolean; echoDeadlineMs?: number },
  ) {}

  output(chunk: Buffer): void {
    const text = this.outDec.decode(chunk, { stream: true });
    if (!text) return;
    if (this.pending.length) this.settle(text);
    this.rec.output(text);
  }

  input(chunk: Buffer): void {
    const text = this.inDec.decode(chunk, { stream: true });
    if (!text) return;
    if (!this.opts.maskUnechoed) {
      this.rec.input(text);
      return;
    }
    this.pending.push({ at: Date.now(), text });
    if (!this.timer) this.timer = setTimeout(() => this.expire(), this.opts.echoDeadlineMs ?? 1000);
  }

  /** Writes held keystrokes; with no output to compare against, printable ones are masked. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const p of this.pending) this.rec.input(mask(p.text), p.at);
    this.pending = [];
  }

  private expire(): void {
    this.timer = undefined;
    this.flush();
  }

  private settle(output: string): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let pos = 0;
    for (const p of this.pending) {
      const visible = p.text.replace(CONTROL, '');
      if (!visible) {
        this.rec.input(p.text, p.at);
        continue;
      }
      pos = skipControls(output, pos);
      // An echo can be split over two output chunks: a matching tail of this one counts.
      const rest = output.slice(pos);
      if (output.startsWith(visible, pos) || (rest.length > 0 && visible.startsWith(rest))) {
        pos = Math.min(output.length, pos + visible.length);
        this.rec.input(p.text, p.at);
      } else {
        this.rec.input(mask(p.text), p.at);
      }
    }
    this.pending = [];
  }
}

function skipControls(s: string, pos: number): number {
  for (;;) {
    CONTROL.lastIndex = pos;
    const m = CONTROL.exec(s);
    if (!m || m.index !== pos) return pos;
    pos += m[0].length;
  }
}

/** Replaces printable characters with `*`, keeping control keys and escape sequences. */
export function mask(text: string): string {
  let out = '';
  let last = 0;
  CONTROL.lastIndex = 0;
  for (const m of text.matchAll(CONTROL)) {
    out += '*'.repeat([...text.slice(last, m.index)].length) + m[0];
    last = m.index! + m[0].length;
  }
  return out + '*'.repeat([...text.slice(last)].length);
}
