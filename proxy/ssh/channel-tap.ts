import { isUtf8 } from 'node:buffer';
import type { TerminalSink } from '../../recorder/ssh-recorder.js';
import { keyParts, printableKeys } from '../../recorder/terminal-escapes.js';

/**
 * Output looked at for the echo of held keystrokes, counted from the oldest one. An echo comes
 * right after its keystroke, so a bulk transfer is never scanned: past this window the held
 * keystrokes wait for Enter or the deadline and are masked (the safe side).
 */
const ECHO_WINDOW = 16 * 1024;
const EMPTY = Buffer.alloc(0);

interface PendingInput {
  at: number;
  text: string;
}

/**
 * Feeds one channel's terminal bytes to the connection's recording. Each channel has its own
 * pair of streaming TextDecoders, so a UTF-8 sequence split across chunks survives and
 * channels do not corrupt each other's sequences.
 *
 * Echo masking (pty channels): keystrokes are held until their printable text shows up, in
 * typing order, in the target's output that came after them: that is their echo, and they are
 * recorded as typed. Keystrokes still without an echo when the user presses Enter, or after
 * `echoDeadlineMs` (default 1 s), were not echoed (a sudo or `read -s` prompt) and are
 * recorded as one `*` per character. Control keys (Enter, arrows, Ctrl-C) are always kept.
 * Failure modes: an echo slower than the deadline, or typing Enter before the echo of the
 * previous keys arrived, over-masks (the safe side); a secret typed in one chunk together with
 * its Enter is checked against the output that follows, so a short secret that happens to
 * appear in that output would be kept. Output to the client is never delayed; only the `i`
 * events wait, keeping their keystroke time.
 */
export class ChannelTap {
  private readonly outDec = new TextDecoder('utf-8');
  private readonly inDec = new TextDecoder('utf-8');
  private pending: PendingInput[] = [];
  private timer: NodeJS.Timeout | undefined;
  private seen = '';
  /**
   * The last bytes given to the output decoder while it may hold the start of a UTF-8 sequence
   * split across chunks (empty when it holds nothing): a sequence can span three chunks.
   */
  private split: Buffer = EMPTY;
  private cursor = 0;

  constructor(
    private readonly rec: TerminalSink,
    private readonly opts: { maskUnechoed: boolean; echoDeadlineMs?: number },
  ) {}

  output(chunk: Buffer): void {
    let text: string | undefined;
    if (this.rec.outputBytes) {
      // A raw recording keeps the bytes as they are; text is only needed for the echo check.
      this.rec.outputBytes(chunk);
    } else if (this.split.length === 0 && isUtf8(chunk)) {
      // Whole, valid UTF-8 (nearly all output) goes to the recording as bytes: no decode, no
      // per-chunk string. A chunk ending inside a sequence fails isUtf8 and takes the decoder.
      this.rec.outputUtf8(chunk);
    } else {
      const probe = this.split.length ? Buffer.concat([this.split, chunk.subarray(-4)]).subarray(-4) : chunk.subarray(-4);
      this.split = endsInsideSequence(probe) ? Buffer.from(probe) : EMPTY;
      text = this.outDec.decode(chunk, { stream: true });
      if (text) this.rec.output(text);
    }
    // Only output that came after the oldest held keystroke can be its echo, and only its start.
    const room = ECHO_WINDOW - this.seen.length;
    if (!this.pending.length || room <= 0) return;
    const add = (text ?? chunk.toString('utf8', 0, Math.min(chunk.length, room))).slice(0, room);
    if (!add) return;
    this.seen += add;
    this.settle();
  }

  /** The proxy's own text to the user: recorded as output, never compared with held keystrokes. */
  notice(text: string, at: number): void {
    this.rec.output(text, at);
  }

  input(chunk: Buffer): void {
    const text = this.inDec.decode(chunk, { stream: true });
    if (!text) return;
    if (!this.opts.maskUnechoed) {
      this.rec.input(text);
      return;
    }
    // Enter submits what was typed before it: keystrokes still without an echo by now were
    // not echoed (the echo of typed text comes before the line is submitted).
    if (/[\r\n]/.test(text)) this.maskAll();
    this.pending.push({ at: Date.now(), text });
    this.release();
    this.arm();
  }

  /**
   * The channel ended: held keystrokes are written (with no output left to compare against,
   * printable ones are masked), and so is a cut-off UTF-8 tail.
   */
  flush(): void {
    this.maskAll();
    const tail = this.outDec.decode();
    this.split = EMPTY;
    if (tail) this.rec.output(tail);
  }

  private maskAll(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const p of this.pending) this.rec.input(mask(p.text), p.at);
    this.pending = [];
    this.seen = '';
    this.cursor = 0;
  }

  private get deadline(): number {
    return this.opts.echoDeadlineMs ?? 1000;
  }

  private arm(): void {
    if (this.timer || !this.pending.length) return;
    const wait = Math.max(0, this.pending[0]!.at + this.deadline - Date.now());
    this.timer = setTimeout(() => this.expire(), wait);
  }

  /** Keystrokes whose echo did not come within the deadline were not echoed: mask them. */
  private expire(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.pending.length && this.pending[0]!.at + this.deadline <= now) {
      const p = this.pending.shift()!;
      this.rec.input(mask(p.text), p.at);
    }
    this.release();
    this.arm();
  }

  /** Control-only keystrokes at the head need no decision. */
  private release(): void {
    while (this.pending.length && !printableKeys(this.pending[0]!.text)) {
      const p = this.pending.shift()!;
      this.rec.input(p.text, p.at);
    }
    if (!this.pending.length) {
      this.seen = '';
      this.cursor = 0;
    }
  }

  /** Held keystrokes whose printable text shows up, in typing order, in the output since. */
  private settle(): void {
    while (this.pending.length) {
      const p = this.pending[0]!;
      const visible = printableKeys(p.text);
      const at = this.seen.indexOf(visible, this.cursor);
      if (at < 0) break;
      this.cursor = at + visible.length;
      this.pending.shift();
      this.rec.input(p.text, p.at);
      this.release();
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.arm();
  }
}

/** True when the buffer ends with an incomplete UTF-8 sequence (its lead byte wants more). */
export function endsInsideSequence(buf: Buffer): boolean {
  for (let i = buf.length - 1, back = 0; i >= 0 && back < 4; i--, back++) {
    const b = buf[i]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back + 1;
  }
  return false;
}

/** Replaces printable characters with `*`, keeping control keys and escape sequences (terminal-escapes.ts). */
export function mask(text: string): string {
  let out = '';
  for (const part of keyParts(text)) out += part.control ? part.text : '*'.repeat([...part.text].length);
  return out;
}
