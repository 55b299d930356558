import type { CommandOp, CommandVerdict, ExtractSummary, IndexOp } from './index.types.js';
import { parseCastEvent } from '../cast-reader.js';
import { plainText } from '../terminal-escapes.js';
import { TypedLines } from '../typed-line.js';
import { commandName } from './command-name.js';
import type { SkipLine } from '../recording-lines.js';
import { plainAsciiStringKept, terminalAsciiText } from './ascii-text.js';

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

/**
 * A line of base64 (60 or more characters of its alphabet only, with upper and lower case and a
 * digit, as `base64` prints 76 a line): encoded data, not words. FTS5 splits it at `+` and `/`
 * into tokens no one searches for, and they were most of the index's cost on bulk text (about
 * 0.3 s of CPU per recording's first 4 MiB). Such lines count toward MAX_OUTPUT_CHARS but are not
 * indexed; one marker per recording says where they began. Hex (one case) and URLs (`:` `.` `?`)
 * do not match, so hashes and addresses stay searchable.
 */
export const ENCODED_MARKER = 'base64-encoded output is not indexed (the recording keeps all of it)';

/** Per ASCII code: 1 upper-case letter, 2 lower-case letter, 4 digit, 8 `+` or `/`; 0 for the rest. */
const B64 = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  B64[c] = /[A-Z]/.test(ch) ? 1 : /[a-z]/.test(ch) ? 2 : /[0-9]/.test(ch) ? 4 : ch === '+' || ch === '/' ? 8 : 0;
}
/** The line terminators of a JavaScript regular expression (`^` and `$` with the `m` flag). */
const isTerminator = (c: number) => c === 10 || c === 13 || c === 0x2028 || c === 0x2029;

/**
 * `text` without its base64 lines (see above), or `text` itself when it has none. A line is
 * dropped when it is what `/^[A-Za-z0-9+/]{60,}={0,2}\r?(?:\n|$)/gm` matches and its run holds
 * an upper-case letter, a lower-case letter and a digit (that regex was the definition; the
 * unit tests keep it as the oracle). A scan by character code: the regex with its per-line
 * callback cost about 22-25 ms of CPU per MiB of base64 text, most of the worker's cost of a
 * bulk text session's first 4 MiB.
 */
export function withoutEncodedLines(text: string): string {
  const n = text.length;
  if (n < 60) return text;
  let parts: string[] | undefined;
  let kept = 0;
  let p = 0; // always a line start
  while (p < n) {
    let q = p;
    let seen = 0;
    for (; q < n; q++) {
      const c = text.charCodeAt(q);
      const f = c < 128 ? B64[c]! : 0;
      if (f === 0) break;
      seen |= f;
    }
    let end = -1;
    if (q - p >= 60 && (seen & 7) === 7) {
      let e = q;
      if (e < n && text.charCodeAt(e) === 61) {
        e++;
        if (e < n && text.charCodeAt(e) === 61) e++;
      }
      const c = e < n ? text.charCodeAt(e) : -1;
      if (c === -1) end = n;
      else if (c === 10) end = e + 1;
      else if (c === 13) {
        const d = e + 1 < n ? text.charCodeAt(e + 1) : -1;
        end = d === 10 ? e + 2 : d === -1 || isTerminator(d) ? e + 1 : e;
      } else if (c === 0x2028 || c === 0x2029) end = e;
    }
    let from = q;
    if (end >= 0) {
      (parts ??= []).push(text.slice(kept, p));
      kept = end;
      if (end === n) break;
      if (isTerminator(text.charCodeAt(end - 1))) {
        p = end;
        continue;
      }
      from = end;
    }
    // The next line start: after the next line terminator.
    while (from < n && !isTerminator(text.charCodeAt(from))) from++;
    p = from + 1;
  }
  if (!parts) return text;
  parts.push(text.slice(kept));
  return parts.join('');
}

/** `[12.345678, "o", …` → time and type, so only the events needed are JSON-parsed. */
const PREFIX = /^\[\s*([0-9.eE+-]+)\s*,\s*"([a-z])"/;

const isSpace = (c: number | undefined) => c === 32 || c === 9;
const isNumberByte = (c: number | undefined) => c !== undefined && ((c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45);
/**
 * True when the line's bytes begin as PREFIX with type `o` (its `\s` taken as space or tab only:
 * a line this says false of is decoded and PREFIX decides). Past the cap `line` drops such a
 * line unparsed, so a reader need not decode it: most of a bulk session's bytes.
 */
export function isOutputEventLine(b: Buffer, from: number, to: number): boolean {
  let i = from;
  if (b[i++] !== 91) return false; // [
  while (i < to && isSpace(b[i])) i++;
  const num = i;
  while (i < to && isNumberByte(b[i])) i++;
  if (i === num) return false;
  while (i < to && isSpace(b[i])) i++;
  if (b[i++] !== 44) return false; // ,
  while (i < to && isSpace(b[i])) i++;
  return i + 3 <= to && b[i] === 34 && b[i + 1] === 111 && b[i + 2] === 34; // "o"
}

/** Text kinds indexed in chunks: terminal output, and the stdin of raw channels that no gate judged. */
type TextKind = 'output' | 'input';

interface Open { key: number; kind: TextKind; t: number; text: string }

/** Unjudged commands kept for a verdict marker written after them (exec, stdin read as typed lines). */
const MAX_UNJUDGED = 16;

/**
 * Reads an asciicast v2 recording line by line (https://docs.asciinema.org/manual/asciicast/v2/)
 * and emits index ops: output text in chunks (`o`), typed shell lines as commands (`i`), markers
 * (`m`) as text, and the verdicts the brokers write as markers (`exec: …`, `allowed (rule): …`,
 * `alert (rule): …`, `review (rule): hold: …`, `approved: hold: …`, `denied: line: why (rule r)`, `exit status N`) settle the
 * command they follow. The same ops come out whether the file is read whole (rebuild) or in
 * pieces as it grows (live), which is why a rebuilt index equals the live one.
 */
export class AsciicastExtractor {
  private header = true;
  private nextKey = 1;
  private readonly open: { output?: Open; input?: Open } = {};
  private outputChars = 0;
  private encodedNoted = false;
  private readonly typed = new TypedLines();
  private last: CommandOp | undefined;
  /** Commands no verdict marker has settled yet, oldest first (a marker settles at most one). */
  private unjudged: CommandOp[] = [];
  private readonly held = new Map<string, CommandOp>();
  /**
   * A shell line made from its verdict marker: the gate writes the verdict at Enter, before the
   * Enter reaches the input track, so the typed line that ends next (its first key before the
   * marker) is the same line, whatever its keystrokes spell (history, Tab): it is not counted twice.
   */
  private marked: { t: number } | undefined;
  readonly summary: ExtractSummary = { denials: 0, commands: 0 };

  /** False once MAX_OUTPUT_CHARS of output text are indexed: a reader may skip decoding output. */
  get wantsOutput(): boolean {
    return this.outputChars < MAX_OUTPUT_CHARS;
  }

  /**
   * For a line reader (lineBatchesSync): which lines `line` would drop unparsed, so they need not
   * be decoded; none until past the header and the output cap.
   */
  get skipLine(): SkipLine | undefined {
    return this.header || this.wantsOutput ? undefined : isOutputEventLine;
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
    else if (type === 'i') this.typed.feed(t, data, (lt, l) => this.typedLine(lt, l.trim(), out));
    else if (type === 'm') this.marker(t, data, out);
  }

  /** Stdin text of a raw channel no gate judged (a piped script, a here-document): indexed as `input`. */
  input(t: number, data: string, out: IndexOp[]): void {
    this.text('input', t, data, out);
  }

  /** The text chunks still open, so live text is searchable before a chunk closes. */
  pending(out: IndexOp[]): void {
    for (const o of [this.open.output, this.open.input]) if (o?.text.trim()) out.push(this.docOp(o));
  }

  /** End of the recording: the open chunks are final. */
  end(out: IndexOp[]): void {
    this.close('output', out);
    this.close('input', out);
  }

  private output(t: number, data: string, out: IndexOp[]): void {
    this.text('output', t, data, out);
  }

  private text(kind: TextKind, t: number, data: string, out: IndexOp[]): void {
    if (this.outputChars >= MAX_OUTPUT_CHARS) return;
    const ascii = terminalAsciiText(data);
    if (ascii) return this.plainKept(kind, t, ascii.length, ascii.kept, out);
    const plain = plainText(data);
    if (!plain) return;
    this.plainKept(kind, t, plain.length, plainAsciiStringKept(plain) ?? withoutEncodedLines(plain), out);
  }

  /**
   * Text of `plainLength` characters once made plain (plainText), of which `kept` is what
   * withoutEncodedLines leaves: what `event` does with `o` data (`input` with stdin), for a
   * reader that made both from bytes (extract-raw.ts, ascii-text.ts).
   */
  plainKept(kind: TextKind, t: number, plainLength: number, kept: string, out: IndexOp[]): void {
    if (this.outputChars >= MAX_OUTPUT_CHARS || !plainLength) return;
    // Dropped base64 lines still count: the cap bounds the text read, not the text kept.
    this.outputChars += plainLength;
    let text = kept;
    if (text.length !== plainLength && !this.encodedNoted) {
      this.encodedNoted = true;
      this.marker(t, ENCODED_MARKER, out);
    }
    if (this.outputChars >= MAX_OUTPUT_CHARS) {
      text = text.slice(0, Math.max(0, text.length - (this.outputChars - MAX_OUTPUT_CHARS)));
      this.chunk(kind, t, text, out);
      this.close('output', out);
      this.close('input', out);
      this.marker(t, `output after the first ${MAX_OUTPUT_CHARS / (1024 * 1024)} MiB of text is not indexed (the recording keeps all of it)`, out);
      return;
    }
    this.chunk(kind, t, text, out);
  }

  private chunk(kind: TextKind, t: number, text: string, out: IndexOp[]): void {
    if (!text) return;
    let open = this.open[kind];
    if (open && t - open.t >= CHUNK_SECONDS) this.close(kind, out);
    open = this.open[kind] ??= { key: this.nextKey++, kind, t, text: '' };
    open.text += text;
    while (open.text.length > CHUNK_CHARS) {
      // Cut at a line break where there is one, so words stay whole.
      const nl = open.text.lastIndexOf('\n', CHUNK_CHARS);
      const cut = nl > CHUNK_CHARS / 2 ? nl + 1 : CHUNK_CHARS;
      const rest = open.text.slice(cut);
      open.text = open.text.slice(0, cut);
      this.close(kind, out);
      open = this.open[kind] = { key: this.nextKey++, kind, t, text: rest };
    }
  }

  private close(kind: TextKind, out: IndexOp[]): void {
    const o = this.open[kind];
    if (o?.text.trim()) out.push(this.docOp(o));
    this.open[kind] = undefined;
  }

  private docOp(o: Open): IndexOp {
    return { op: 'doc', key: o.key, kind: o.kind, t: o.t, ts: this.ts(o.t), text: o.text };
  }

  private ts(t: number): number {
    return Math.round(this.startMs + t * 1000);
  }

  /** A typed line at its Enter (the input track). */
  private typedLine(t: number, text: string, out: IndexOp[]): void {
    const marked = this.marked;
    this.marked = undefined;
    // Its verdict marker came first and made the event already.
    if (marked && t <= marked.t) return;
    this.unjudged.push(this.command(t, 'shell', text, out));
    if (this.unjudged.length > MAX_UNJUDGED) this.unjudged.shift();
  }

  private command(t: number, via: 'shell' | 'exec', text: string, out: IndexOp[]): CommandOp {
    const c: CommandOp = { op: 'command', key: this.nextKey++, t, ts: this.ts(t), via, text: text.slice(0, MAX_TEXT), name: commandName(text), verdict: 'allow' };
    this.summary.commands++;
    this.last = c;
    out.push({ ...c });
    return c;
  }

  private settle(c: CommandOp | undefined, out: IndexOp[], patch: { verdict?: CommandVerdict; rule?: string; outcome?: string }): void {
    if (!c) return;
    Object.assign(c, patch);
    out.push({ ...c });
  }

  /** The oldest unjudged command the marker text names (`TEXT` or `TEXT: why`), taken off the list. */
  private takeUnjudged(text: string): CommandOp | undefined {
    const i = this.unjudged.findIndex((c) => text === c.text || text.startsWith(`${c.text}: `));
    return i < 0 ? undefined : this.unjudged.splice(i, 1)[0];
  }

  /**
   * The command a verdict marker speaks of: an exec request (its `exec:` marker comes first), or
   * a line already read as typed (stdin of a shell recorded as a terminal), when the marker names
   * its text and nothing settled it yet. Otherwise the marker is the first record of the line
   * (the gates write the verdict at Enter, before the Enter is recorded; a denied line never
   * reaches the target): it becomes its own event. A verdict is never moved onto another command.
   */
  private judged(t: number, text: string, out: IndexOp[]): CommandOp {
    const c = this.takeUnjudged(text);
    if (c) return c;
    const made = this.command(t, 'shell', text.startsWith('(input not echoed)') ? '(input not echoed)' : text, out);
    this.marked = { t };
    return made;
  }

  private marker(t: number, label: string, out: IndexOp[]): void {
    // An `allowed` marker is the command event itself (text, verdict, rule): not a second hit.
    if (!label.startsWith('allowed (')) out.push({ op: 'doc', key: this.nextKey++, kind: 'marker', t, ts: this.ts(t), text: plainText(label).slice(0, MAX_TEXT) });
    if (/^(denied|refused)\b/.test(label)) this.summary.denials++;
    let m: RegExpExecArray | null;
    if ((m = /^exec: ([\s\S]*)$/.exec(label))) {
      this.unjudged.push(this.command(t, 'exec', m[1]!, out));
      if (this.unjudged.length > MAX_UNJUDGED) this.unjudged.shift();
    } else if ((m = /^allowed \(([^)]*)\): ([\s\S]*)$/.exec(label))) {
      // Every line and exec request the command policy allowed outright, with the deciding rule
      // (`default_action` when no rule matched).
      this.settle(this.judged(t, m[2]!, out), out, { verdict: 'allow', rule: m[1] });
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
      // `denied: LINE: why`: an unjudged command whose text it starts with, else the text before the first ': '.
      let c = this.takeUnjudged(rest);
      const cut = rest.indexOf(': ');
      // No `LINE: why` shape and no command of that text: a channel refusal (`denied: sftp …`), not a command.
      if (!c && cut <= 0) return;
      c ??= this.judged(t, rest.slice(0, cut), out);
      const why = rest.startsWith(`${c.text}: `) ? rest.slice(c.text.length + 2) : rest;
      this.settle(c, out, { verdict: 'deny', outcome: `denied: ${why}`, ...rule });
    } else if ((m = /^exit (status|signal) (\S+)$/.exec(label))) {
      if (this.last?.via === 'exec' && this.last.outcome === undefined && this.last.verdict !== 'deny') this.settle(this.last, out, { outcome: `exit ${m[1] === 'signal' ? 'signal ' : ''}${m[2]}` });
    }
  }
}
