import { plainText, stripKeyEscapes } from './terminal-escapes.js';

/**
 * What the user typed on one command line, from keystrokes alone, with the simplest editing
 * model: printable text, Backspace/DEL, Ctrl-U (kill the line) and Ctrl-W (kill a word).
 * Anything else (arrows, Tab, other escape sequences and controls) is dropped: the line is
 * then what was typed, not necessarily what the target's line editor holds.
 *
 * Used by the SSH broker's Enter gate (proxy/ssh/enter-gate.ts: the fallback when the target
 * does not echo) and by the recording readers (TypedLines below: the "typed" panel and search).
 */
export class TypedLine {
  private buf = '';

  /** `max` caps the characters kept (a reader's index); the gate keeps everything it must judge. */
  constructor(private readonly max = Infinity) {}

  /** Decoded keystrokes; an Enter in them is a control like any other (TypedLines splits on it). */
  feed(text: string): void {
    for (const ch of stripKeyEscapes(text)) {
      if (ch === '\x7f' || ch === '\b') this.buf = this.buf.slice(0, -1);
      else if (ch === '\x15') this.buf = '';
      else if (ch === '\x17') this.buf = this.buf.replace(/\S*\s*$/, '');
      else if (ch >= ' ') {
        if (this.buf.length < this.max) this.buf += ch;
      }
    }
  }

  line(): string {
    return this.buf;
  }

  reset(): void {
    this.buf = '';
  }
}

/** Characters kept per typed line in a recording's index. */
const MAX_LINE = 4096;

/**
 * The `i` track of a terminal recording as typed lines: Enter (CR or LF) ends a line, which is
 * timed at its first keystroke and reported as plain text when it is not blank.
 */
export class TypedLines {
  private readonly cur = new TypedLine(MAX_LINE);
  private startT = 0;

  feed(t: number, data: string, onLine: (t: number, line: string) => void): void {
    // Key escape sequences hold no CR or LF, so cutting at Enter first keeps every one whole.
    const parts = data.split(/[\r\n]/);
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) {
        const line = plainText(this.cur.line());
        if (line.trim()) onLine(this.startT, line);
        this.cur.reset();
      }
      const wasEmpty = !this.cur.line();
      this.cur.feed(parts[i]!);
      if (wasEmpty && this.cur.line()) this.startT = t;
    }
  }
}
