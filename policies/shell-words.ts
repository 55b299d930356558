/**
 * Splits a shell command line into the simple commands bash would run, the way a policy needs
 * them: de-quoted words, with command substitutions, subshells, process substitutions and
 * wrappers (`sudo`, `env`, `bash -c`, `xargs`, `find -exec`…) opened up.
 *
 * This is a conservative approximation of bash's grammar, not a shell: when in doubt it
 * produces MORE commands (a heredoc body, a function body, an alias value) rather than fewer.
 * Pure, never throws, bounded in depth and output (see `splitCommands`).
 */

import { decodeAnsiC, expandWords, matchClose } from './shell-lexer.js';
import { emit } from './shell-wrappers.js';
import { HOOK_ASSIGNMENT, hookAssignment } from './shell-hooks.js';
import { MAX_COMMANDS, MAX_DEPTH, type Ctx, type SimpleCommand, type Word } from './shell-words.types.js';

export type { SimpleCommand } from './shell-words.types.js';
export { basename } from './shell-wrappers.js';

const MAX_VAR = 4096;
const MAX_NEST = 64;

const META = new Set([' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')']);
const RESERVED_SKIP = new Set(['!', '{', '}', 'then', 'do', 'else', 'elif', 'if', 'while', 'until', 'fi', 'done', 'esac', '[[', ']]']);
const RESERVED_DROP = new Set(['for', 'select', 'case', 'function', 'in']);
/** Environment variables whose value is a command the program on the same line may run (a pager, an editor, a helper). */
const COMMAND_VARS = new Set(['PAGER', 'GIT_PAGER', 'MANPAGER', 'SYSTEMD_PAGER', 'PSQL_PAGER', 'BAT_PAGER', 'DELTA_PAGER', 'EDITOR', 'VISUAL', 'GIT_EDITOR', 'GIT_SEQUENCE_EDITOR', 'SUDO_EDITOR', 'SVN_EDITOR', 'GIT_SSH_COMMAND', 'GIT_SSH', 'GIT_ASKPASS', 'SSH_ASKPASS', 'SUDO_ASKPASS', 'LESSOPEN', 'LESSCLOSE', 'BROWSER', 'GIT_EXTERNAL_DIFF']);

/** Simple commands as de-quoted argv lists (the shape stored in a Verdict). */
export function splitShell(line: string): string[][] {
  return splitCommands(line).map((c) => c.argv);
}

export function splitCommands(line: string): SimpleCommand[] {
  const ctx: Ctx = {
    out: [],
    vars: new Map(),
    budget: 200_000 + line.length * 4,
    parse: (text, depth, wrappers) => parseNested(text, ctx, depth, wrappers),
    scan: (text, depth, wrappers) => scanSubstitutions(text, ctx, depth, wrappers),
  };
  try {
    parseNested(String(line), ctx, 0, []);
  } catch {
    // Defensive only: a bug here must not open a hole. Fall back to blank-separated words.
    ctx.out.push({ argv: String(line).split(/\s+/).filter(Boolean), wrappers: [], dynamic: true });
  }
  return ctx.out;
}

/** Parses text at `depth` where only `$(…)`, backticks and `${…}` matter (inner text, a prompt string). */
function scanSubstitutions(text: string, ctx: Ctx, depth: number, wrappers: string[]): void {
  if (depth > MAX_DEPTH || !/[`$]/.test(text)) return;
  new Parser(text, ctx, depth, wrappers).readAsDouble();
}

function parseNested(text: string, ctx: Ctx, depth: number, wrappers: string[]): void {
  if (depth > MAX_DEPTH) return;
  new Parser(text, ctx, depth, wrappers).parseList(null);
}

class Parser {
  pos = 0;
  /** Open subshells and substitutions in this text; past MAX_NEST "(" is only a separator. */
  private nest = 0;
  private words: Word[] = [];
  private hereStrings: string[] = [];

  constructor(private readonly s: string, private readonly ctx: Ctx, private readonly depth: number, private readonly wrappers: string[]) {}

  private tick(): boolean {
    return --this.ctx.budget > 0 && this.ctx.out.length < MAX_COMMANDS;
  }

  /** Reads commands until `term` (consumed) or the end of input. */
  parseList(term: ')' | null): void {
    const s = this.s;
    while (this.pos < s.length && this.tick()) {
      const c = s[this.pos]!;
      if (c === ' ' || c === '\t') { this.pos++; continue; }
      if (c === '\\' && s[this.pos + 1] === '\n') { this.pos += 2; continue; }
      if (c === '#') {
        while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
        continue;
      }
      if (c === ')') {
        this.pos++;
        this.flush();
        if (term === ')') return;
        continue; // stray ")" (case patterns, typos): a separator
      }
      if (c === '(') {
        this.pos++;
        const last = this.words.at(-1);
        const hook = last?.raw.endsWith('=') ? HOOK_ASSIGNMENT.exec(last.raw) : null;
        if (hook) {
          this.hookArray(hook[1]!);
          continue;
        }
        this.flush();
        if (this.nest < MAX_NEST) this.nested(() => this.parseList(')'));
        continue;
      }
      if ((c === '<' || c === '>') && s[this.pos + 1] === '(') {
        this.pos += 2;
        if (this.nest < MAX_NEST) this.nested(() => this.parseList(')'));
        continue;
      }
      if (this.redirection()) continue;
      if (c === ';' || c === '&' || c === '|' || c === '\n') {
        this.pos++;
        this.flush();
        continue;
      }
      const w = this.readWord();
      if (w) this.words.push(w);
    }
    this.flush();
  }

  /** `PROMPT_COMMAND=(A B)`: each element is a hook value (shell-hooks.ts). */
  private hookArray(name: string): void {
    const s = this.s;
    while (this.pos < s.length && this.tick()) {
      const c = s[this.pos]!;
      if (c === ')') { this.pos++; return; }
      if (c === ' ' || c === '\t' || c === '\n') { this.pos++; continue; }
      const w = META.has(c) ? (this.pos++, undefined) : this.readWord();
      if (w) hookAssignment(name, w.value.replace(/^\[[^\]]*\]=/, ''), this.ctx, this.depth, this.wrappers);
    }
  }

  /** Runs `fn` with a fresh command buffer, so `a $(b) c` keeps collecting `a … c` afterwards. */
  private nested(fn: () => void): void {
    const words = this.words;
    const here = this.hereStrings;
    this.words = [];
    this.hereStrings = [];
    this.nest++;
    fn();
    this.nest--;
    this.words = words;
    this.hereStrings = here;
  }

  /** `[n]< > >> << <<- <<< <> >| >& <& &> &>>`: the target word is read (for its substitutions) and dropped. */
  private redirection(): boolean {
    const s = this.s;
    let p = this.pos;
    while (p < s.length && s[p]! >= '0' && s[p]! <= '9') p++;
    if (p > this.pos && s[p] !== '<' && s[p] !== '>') return false;
    if (s[p] === '&' && s[p + 1] === '>') p++;
    else if (s[p] !== '<' && s[p] !== '>') return false;
    const op = s[p]!;
    p++;
    let hereString = false;
    if (op === '<' && s[p] === '<') {
      p++;
      if (s[p] === '<') { p++; hereString = true; } else if (s[p] === '-') p++;
    } else if (s[p] === op || s[p] === '&' || s[p] === '|' || (op === '<' && s[p] === '>')) p++;
    this.pos = p;
    while (s[this.pos] === ' ' || s[this.pos] === '\t') this.pos++;
    if (s[this.pos] === '(' && (op === '<' || op === '>')) return true; // `< (` is not valid; let parseList see "("
    const target = this.readWord();
    if (hereString && target) this.hereStrings.push(target.value);
    return true;
  }

  private readWord(): Word | undefined {
    const s = this.s;
    const start = this.pos;
    const w: Word = { value: '', raw: '', quoted: false, dynamic: false, split: false };
    while (this.pos < s.length && this.tick()) {
      const c = s[this.pos]!;
      if (META.has(c)) break;
      if (c === '\\') {
        if (s[this.pos + 1] === '\n') { this.pos += 2; continue; }
        if (this.pos + 1 < s.length) w.value += s[this.pos + 1];
        w.quoted = true;
        this.pos += 2;
        continue;
      }
      if (c === "'") {
        const end = s.indexOf("'", this.pos + 1);
        const stop = end < 0 ? s.length : end;
        w.value += s.slice(this.pos + 1, stop);
        w.quoted = true;
        this.pos = stop + 1;
        continue;
      }
      if (c === '"') {
        this.pos++;
        this.readDouble(w, '"');
        w.quoted = true;
        continue;
      }
      if (c === '`') { this.backtick(w); continue; }
      if (c === '$') { this.dollar(w, false); continue; }
      if (c === '*' || c === '?' || c === '[') w.dynamic = true;
      if ((c === '!' || (c === '^' && this.pos === this.lineStart())) && this.historyExpansion(this.pos)) w.dynamic = true;
      w.value += c;
      this.pos++;
    }
    if (this.pos === start) {
      this.pos++; // cannot happen with META handled by the caller; never loop in place
      return undefined;
    }
    w.raw = s.slice(start, this.pos);
    return w;
  }

  /** Inside "…" (end = '"') or a text scanned only for substitutions (end = null). */
  private readDouble(w: Word, end: '"' | null): void {
    const s = this.s;
    while (this.pos < s.length && this.tick()) {
      const c = s[this.pos]!;
      if (end && c === end) { this.pos++; return; }
      if (c === '\\') {
        const n = s[this.pos + 1];
        if (n === '\n') { this.pos += 2; continue; }
        if (n === '$' || n === '`' || n === '"' || n === '\\') { w.value += n; this.pos += 2; continue; }
        w.value += c;
        this.pos++;
        continue;
      }
      if (c === '`') { this.backtick(w); continue; }
      if (c === '$') { this.dollar(w, true); continue; }
      if (c === '!' && end && this.historyExpansion(this.pos)) w.dynamic = true;
      w.value += c;
      this.pos++;
    }
  }

  private backtick(w: Word): void {
    const s = this.s;
    let p = this.pos + 1;
    let inner = '';
    while (p < s.length && s[p] !== '`') {
      if (s[p] === '\\' && (s[p + 1] === '`' || s[p + 1] === '\\' || s[p + 1] === '$')) { inner += s[p + 1]; p += 2; continue; }
      inner += s[p];
      p++;
    }
    w.value += s.slice(this.pos, Math.min(p + 1, s.length));
    w.dynamic = true;
    this.pos = p + 1;
    parseNested(inner, this.ctx, this.depth + 1, this.wrappers);
  }

  private dollar(w: Word, inDouble: boolean): void {
    const s = this.s;
    const n = s[this.pos + 1];
    if (n === "'" && !inDouble) {
      const decoded = decodeAnsiC(s, this.pos + 2);
      this.pos = decoded.end;
      w.value += decoded.value;
      w.quoted = true;
      return;
    }
    if (n === '"' && !inDouble) {
      this.pos += 2;
      this.readDouble(w, '"');
      w.quoted = true;
      return;
    }
    if (n === '(' && s[this.pos + 2] === '(') {
      // $(( arithmetic )): only its substitutions can run commands.
      const start = this.pos;
      const close = matchClose(s, this.pos + 3, '((', '))');
      const inner = s.slice(this.pos + 3, close);
      this.scanSubstitutions(inner);
      this.pos = Math.min(close + 2, s.length);
      w.value += s.slice(start, this.pos);
      w.dynamic = true;
      return;
    }
    if (n === '(') {
      const start = this.pos;
      this.pos += 2;
      this.nested(() => {
        if (this.nest < MAX_NEST) this.parseList(')');
        else this.pos = matchClose(s, this.pos, '(', ')') + 1;
      });
      w.value += s.slice(start, this.pos);
      w.dynamic = true;
      return;
    }
    if (n === '{') {
      const start = this.pos;
      const close = matchClose(s, this.pos + 2, '{', '}');
      const inner = s.slice(this.pos + 2, close);
      this.pos = Math.min(close + 1, s.length);
      const known = /^[A-Za-z_][A-Za-z0-9_]*$/.test(inner) ? this.ctx.vars.get(inner) : undefined;
      if (known !== undefined) return this.expand(w, known, inDouble);
      this.scanSubstitutions(inner); // ${x:-$(cmd)}
      w.value += s.slice(start, this.pos);
      w.dynamic = true;
      return;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*|^[0-9@*#?$!-]/.exec(s.slice(this.pos + 1, this.pos + 256));
    if (!m) {
      w.value += '$';
      this.pos++;
      return;
    }
    this.pos += 1 + m[0].length;
    const known = this.ctx.vars.get(m[0]);
    if (known !== undefined) return this.expand(w, known, inDouble);
    w.value += '$' + m[0];
    w.dynamic = true;
  }

  private expand(w: Word, value: string, inDouble: boolean): void {
    w.value += value;
    if (!inDouble) w.split = true;
  }

  /**
   * An interactive bash expands history (`!!`, `!-2`, `!rm`, `!?x?`, `!$`, and `^old^new` at the
   * start of the line) before it parses the line, so the text judged is not what runs: such a
   * word is dynamic. Only in the line as typed (depth 0): `bash -c`, `eval` and exec requests do
   * not expand history, but an exec request is judged the same way (the safe side). Not a
   * designator, as in bash: `!` before a blank, `=`, `(`, `"` or the end, and `[!…]` globs.
   */
  private historyExpansion(i: number): boolean {
    if (this.depth !== 0) return false;
    const s = this.s;
    if (s[i] === '^') return i + 1 < s.length && s.indexOf('^', i + 1) > i + 1;
    const n = s[i + 1];
    if (n === undefined || ' \t\n\r=("'.includes(n)) return false;
    return s[i - 1] !== '[';
  }

  /** Where the first word of the text starts (after blanks). */
  private lineStart(): number {
    let i = 0;
    while (this.s[i] === ' ' || this.s[i] === '\t') i++;
    return i;
  }

  private scanSubstitutions(text: string): void {
    scanSubstitutions(text, this.ctx, this.depth + 1, this.wrappers);
  }

  /** Reads all of this parser's text as the inside of "…": only its substitutions run. */
  readAsDouble(): void {
    this.readDouble({ value: '', raw: '', quoted: false, dynamic: false, split: false }, null);
  }

  /** End of a simple command: assignments, reserved words, wrappers. */
  private flush(): void {
    let words = this.words;
    const here = this.hereStrings;
    this.words = [];
    this.hereStrings = [];
    if (words.length === 0) return;
    const runs: string[] = [];
    while (words.length > 0) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=/.exec(words[0]!.raw);
      if (!m) break;
      const value = words[0]!.value.slice(words[0]!.value.indexOf('=') + 1);
      if (COMMAND_VARS.has(m[1]!)) runs.push(value.replace(/^\|+/, ''));
      // `PROMPT_COMMAND=…`, `PS1=…`: run at every prompt from now on (shell-hooks.ts).
      if (HOOK_ASSIGNMENT.test(words[0]!.raw)) hookAssignment(m[1]!, value, this.ctx, this.depth, this.wrappers);
      if (value.length <= MAX_VAR) this.ctx.vars.set(m[1]!, m[0].endsWith('+=') ? (this.ctx.vars.get(m[1]!) ?? '') + value : value);
      words = words.slice(1);
    }
    // `GIT_PAGER='rm x' git log`: a pager, editor or helper from the environment is a command the program runs.
    if (words.length > 0) for (const r of runs) this.ctx.parse(r, this.depth + 1, this.wrappers);
    while (words.length > 0 && !words[0]!.quoted && RESERVED_SKIP.has(words[0]!.value)) words = words.slice(1);
    if (words.length === 0 || (!words[0]!.quoted && RESERVED_DROP.has(words[0]!.value))) return;
    const expanded = expandWords(words);
    emit(expanded, this.wrappers, this.ctx, this.depth, here);
  }
}
