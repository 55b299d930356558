import type { CommandOp, CommandVerdict, ExtractSummary, IndexOp } from './index.types.js';
import { parseCastEvent } from '../cast-reader.js';
import { plainText } from '../terminal-escapes.js';
import { TypedLines } from '../typed-line.js';
import { commandName } from './command-name.js';

/** An output chunk closes after this much recording time or text, so a hit points near its moment. */
export const CHUNK_SECONDS = 2;
export const CHUNK_CHARS = 8 * 1024;
const MAX_TEXT = 20_000;
/**
 * Output text indexed per recording. Bulk output (a `cat` of a dump, base64, a tar listing) is
 * mostly unique tokens: indexing a gigabyte of it made the FTS5 index larger than the data and
 * the proxy's memory grow by hundreds of MB. Past this, one marker says the rest of the output
 * is not indexed; the recording itself keeps every byte, and commands, markers and verdicts are
 * still indexed to the end.
 */
export const MAX_OUTPUT_CHARS = 4 * 1024 * 1024;

/** `[12.345678, "o", …` → time and type, so only the events needed are JSON-parsed. */
const PREFIX = /^\[\s*([0-9.eE+-]+)\s*,\s*"([a-z])"/;

interface Open { key: number; t: number; text: string }

/**
 * Reads an asciicast v2 recording line by line (https://docs.asciinema.org/manual/asciicast/v2/)
 * and emits index ops: output text in chunks (`o`), typed shell lines as commands (`i`), markers
 * (`m`) as text, and the verdicts the brokers write as markers (`exec: …`, `alert (rule): …`,
 * `review (rule): hold: …`, `approved: hold: …`, `denied: line: why (rule r)`, `exit status N`) settle the
 * command they follow. The same ops come out whether the file is read whole (rebuild) or in
 * pieces as it grows (live), which is why a rebuilt index equals the live one.
 */
export class AsciicastExtractor {
  private header = true;
  private nextKey = 1;
  private open: Open | undefined;
  private outputChars = 0;
  private readonly typed = new TypedLines();
  private last: CommandOp | undefined;
  private readonly held = new Map<string, CommandOp>();
  /** A command made from a verdict marker (no typed line before it): its text and time. */
  private marked: { text: string; t: number } | undefined;
  readonly summary: ExtractSummary = { denials: 0, commands: 0 };

  /** False once MAX_OUTPUT_CHARS of output text are indexed: a reader may skip decoding output. */
  get wantsOutput(): boolean {
    return this.outputChars < MAX_OUTPUT_CHARS;
  }

  /** `startMs`: the session start (catalog `start`), which event times count from. */
  constructor(private readonly startMs: number) {}

  /** One line of the file, without its newline. A torn or foreign line is skipped. */
  line(line: string, out: IndexOp[]): void {
    if (this.header) {
      this.header = false;
      if (line.startsWith('{')) return;
    }
    const m = PREFIX.exec(line);
    if (!m) return;
    const type = m[2];
    if (type !== 'o' && type !== 'i' && type !== 'm') return;
    if (type === 'o' && !this.wantsOutput) return; // past the cap: not even parsed
    const e = parseCastEvent(line);
    if (!e) return;
    this.event(e[0], type, e[2], out);
  }

  /** One event (seconds, `o`|`i`|`m`, data): what `line` parses, and what a raw recording renders to. */
  event(t: number, type: string, data: string, out: IndexOp[]): void {
    if (type === 'o') this.output(t, data, out);
    else if (type === 'i') this.typed.feed(t, data, (lt, l) => this.command(lt, 'shell', l.trim(), out));
    else if (type === 'm') this.marker(t, data, out);
  }

  /** The output chunk still open, so live text is searchable before the chunk closes. */
  pending(out: IndexOp[]): void {
    if (this.open?.text.trim()) out.push(this.docOp(this.open));
  }

  /** End of the recording: the open chunk is final. */
  end(out: IndexOp[]): void {
    this.closeOutput(out);
  }

  private output(t: number, data: string, out: IndexOp[]): void {
    if (this.outputChars >= MAX_OUTPUT_CHARS) return;
    let text = plainText(data);
    if (!text) return;
    this.outputChars += text.length;
    if (this.outputChars >= MAX_OUTPUT_CHARS) {
      text = text.slice(0, Math.max(0, text.length - (this.outputChars - MAX_OUTPUT_CHARS)));
      this.output1(t, text, out);
      this.closeOutput(out);
      this.marker(t, `output after the first ${MAX_OUTPUT_CHARS / (1024 * 1024)} MiB of text is not indexed (the recording keeps all of it)`, out);
      return;
    }
    this.output1(t, text, out);
  }

  private output1(t: number, text: string, out: IndexOp[]): void {
    if (!text) return;
    if (this.open && t - this.open.t >= CHUNK_SECONDS) this.closeOutput(out);
    this.open ??= { key: this.nextKey++, t, text: '' };
    this.open.text += text;
    while (this.open.text.length > CHUNK_CHARS) {
      // Cut at a line break where there is one, so words stay whole.
      const nl = this.open.text.lastIndexOf('\n', CHUNK_CHARS);
      const cut = nl > CHUNK_CHARS / 2 ? nl + 1 : CHUNK_CHARS;
      const rest = this.open.text.slice(cut);
      this.open.text = this.open.text.slice(0, cut);
      this.closeOutput(out);
      this.open = { key: this.nextKey++, t, text: rest };
    }
  }

  private closeOutput(out: IndexOp[]): void {
    if (this.open?.text.trim()) out.push(this.docOp(this.open));
    this.open = undefined;
  }

  private docOp(o: Open): IndexOp {
    return { op: 'doc', key: o.key, kind: 'output', t: o.t, ts: this.ts(o.t), text: o.text };
  }

  private ts(t: number): number {
    return Math.round(this.startMs + t * 1000);
  }

  private command(t: number, via: 'shell' | 'exec', text: string, out: IndexOp[]): void {
    // The same line's keys arriving in the input track after the marker that judged it: one event.
    const marked = this.marked;
    this.marked = undefined;
    if (via === 'shell' && marked && marked.text === text && t <= marked.t) return;
    const c: CommandOp = { op: 'command', key: this.nextKey++, t, ts: this.ts(t), via, text: text.slice(0, MAX_TEXT), name: commandName(text), verdict: 'allow' };
    this.summary.commands++;
    this.last = c;
    out.push({ ...c });
  }

  private settle(c: CommandOp | undefined, out: IndexOp[], patch: { verdict?: CommandVerdict; rule?: string; outcome?: string }): void {
    if (!c) return;
    Object.assign(c, patch);
    out.push({ ...c });
  }

  /**
   * The command a verdict marker speaks of: the last one when the marker names its text (or the
   * text was not echoed). Otherwise the marker is the only record of the line (a denied line
   * never reaches the target, so its Enter is not in the input track): it becomes its own event.
   * A verdict is never moved onto a different command.
   */
  private judged(t: number, text: string, out: IndexOp[]): CommandOp {
    const c = this.last;
    if (c && c.verdict === 'allow' && (text === c.text || text.startsWith(`${c.text}: `) || text.startsWith('(input not echoed)'))) return c;
    const line = text.startsWith('(input not echoed)') ? '(input not echoed)' : text;
    this.command(t, 'shell', line, out);
    this.marked = { text: line, t };
    return this.last!;
  }

  private marker(t: number, label: string, out: IndexOp[]): void {
    out.push({ op: 'doc', key: this.nextKey++, kind: 'marker', t, ts: this.ts(t), text: plainText(label).slice(0, MAX_TEXT) });
    if (/^(denied|refused)\b/.test(label)) this.summary.denials++;
    let m: RegExpExecArray | null;
    if ((m = /^exec: ([\s\S]*)$/.exec(label))) {
      this.command(t, 'exec', m[1]!, out);
    } else if ((m = /^alert \(([^)]*)\): ([\s\S]*)$/.exec(label))) {
      this.settle(this.judged(t, m[2]!, out), out, { verdict: 'alert', rule: m[1] });
    } else if ((m = /^review \(([^)]*)\): (\S+): ([\s\S]*)$/.exec(label))) {
      const c = this.judged(t, m[3]!, out);
      this.held.set(m[2]!, c);
      this.settle(c, out, { verdict: 'review', rule: m[1], outcome: `held for approval (${m[2]})` });
    } else if ((m = /^approved: (\S+): /.exec(label))) {
      this.settle(this.held.get(m[1]!), out, { outcome: `approved (${m[1]})` });
    } else if ((m = /^denied: ([\s\S]*)$/.exec(label))) {
      let rest = m[1]!;
      // The brokers name the deciding rule at the end: `… (rule no-stop)`.
      const named = / \(rule ([^()\s]+)\)$/.exec(rest);
      if (named) rest = rest.slice(0, named.index);
      const rule = named ? { rule: named[1] } : {};
      const hold = [...this.held.keys()].find((h) => rest.includes(`${h} not approved`));
      if (hold) {
        this.settle(this.held.get(hold)!, out, { verdict: 'deny', outcome: rest.slice(rest.indexOf(hold)), ...rule });
        return;
      }
      // `denied: LINE: why`; a line the last command is not gets the text before the first ': '.
      const last = this.last;
      const isLast = !!last && last.verdict === 'allow' && (rest === last.text || rest.startsWith(`${last.text}: `));
      const cut = rest.indexOf(': ');
      // No `LINE: why` shape and not the last command: a channel refusal (`denied: sftp …`), not a command.
      if (!isLast && cut <= 0) return;
      const c: CommandOp = isLast ? last! : this.judged(t, rest.slice(0, cut), out);
      const why = rest.startsWith(`${c.text}: `) ? rest.slice(c.text.length + 2) : rest;
      this.settle(c, out, { verdict: 'deny', outcome: `denied: ${why}`, ...rule });
    } else if ((m = /^exit (status|signal) (\S+)$/.exec(label))) {
      if (this.last?.via === 'exec' && this.last.outcome === undefined && this.last.verdict !== 'deny') this.settle(this.last, out, { outcome: `exit ${m[1] === 'signal' ? 'signal ' : ''}${m[2]}` });
    }
  }
}
