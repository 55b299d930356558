/**
 * Splits a shell command line into the simple commands bash would run, the way a policy needs
 * them: de-quoted words, with command substitutions, subshells, process substitutions and
 * wrappers (`sudo`, `env`, `bash -c`, `xargs`, `find -exec`…) opened up.
 *
 * This is a conservative approximation of bash's grammar, not a shell: when in doubt it
 * produces MORE commands (a heredoc body, a function body, an alias value) rather than fewer.
 * Pure, never throws, bounded in depth and output (see `splitCommands`).
 */

export interface SimpleCommand {
  /** De-quoted words; argv[0] is the command as typed (`/bin/rm`, not `rm`). */
  argv: string[];
  /** Wrappers peeled off, outermost first, as basenames (`sudo`, `env`, `bash`). */
  wrappers: string[];
  /** argv[0] depends on something the splitter cannot know: an unknown variable, a command substitution or a glob. */
  dynamic: boolean;
}

interface Word {
  value: string;
  /** Source text, to tell `a=b` (assignment) from `'a=b'` (a command name). */
  raw: string;
  quoted: boolean;
  /** Holds an unresolved expansion, a substitution or an unquoted glob. */
  dynamic: boolean;
  /** Holds an unquoted expansion of a known variable: split on blanks like bash does. */
  split: boolean;
}

interface Ctx {
  out: SimpleCommand[];
  vars: Map<string, string>;
  /** Work left; every loop step spends one, so hostile input cannot hang us. */
  budget: number;
}

const MAX_DEPTH = 12;
const MAX_COMMANDS = 512;
const MAX_VAR = 4096;
const MAX_BRACE = 64;
const MAX_NEST = 64;

const META = new Set([' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')']);
const RESERVED_SKIP = new Set(['!', '{', '}', 'then', 'do', 'else', 'elif', 'if', 'while', 'until', 'fi', 'done', 'esac', '[[', ']]']);
const RESERVED_DROP = new Set(['for', 'select', 'case', 'function', 'in']);
const SHELLS = new Set(['bash', 'sh', 'zsh', 'dash', 'ksh', 'ash', 'mksh', 'rbash', 'fish', 'csh', 'tcsh']);

/** Simple commands as de-quoted argv lists (the shape stored in a Verdict). */
export function splitShell(line: string): string[][] {
  return splitCommands(line).map((c) => c.argv);
}

export function splitCommands(line: string): SimpleCommand[] {
  const ctx: Ctx = { out: [], vars: new Map(), budget: 200_000 + line.length * 4 };
  try {
    parseNested(String(line), ctx, 0, []);
  } catch {
    // Defensive only: a bug here must not open a hole. Fall back to blank-separated words.
    ctx.out.push({ argv: String(line).split(/\s+/).filter(Boolean), wrappers: [], dynamic: true });
  }
  return ctx.out;
}

export function basename(word: string): string {
  const i = word.lastIndexOf('/');
  return i >= 0 && i < word.length - 1 ? word.slice(i + 1) : word;
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
      this.pos += 2;
      w.value += this.ansiC();
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

  /** Runs a sub-parser over text where only `$(…)`, backticks and `${…}` matter. */
  private scanSubstitutions(text: string): void {
    if (this.depth >= MAX_DEPTH || !/[`$]/.test(text)) return;
    const p = new Parser(text, this.ctx, this.depth + 1, this.wrappers);
    p.readDouble({ value: '', raw: '', quoted: false, dynamic: false, split: false }, null);
  }

  private ansiC(): string {
    const s = this.s;
    let out = '';
    while (this.pos < s.length) {
      const c = s[this.pos]!;
      if (c === "'") { this.pos++; return out; }
      if (c !== '\\') { out += c; this.pos++; continue; }
      const n = s[this.pos + 1] ?? '';
      this.pos += 2;
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', e: '\x1b', E: '\x1b', '\\': '\\', "'": "'", '"': '"', '?': '?' };
      if (n in simple) { out += simple[n]; continue; }
      if (n === 'x' || n === 'u' || n === 'U') {
        const max = n === 'x' ? 2 : n === 'u' ? 4 : 8;
        const m = new RegExp(`^[0-9a-fA-F]{1,${max}}`).exec(s.slice(this.pos, this.pos + max));
        if (!m) { out += '\\' + n; continue; }
        this.pos += m[0].length;
        const cp = parseInt(m[0], 16);
        out += cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
        continue;
      }
      if (n >= '0' && n <= '7') {
        const m = /^[0-7]{1,3}/.exec(s.slice(this.pos - 1, this.pos + 2))!;
        this.pos += m[0].length - 1;
        out += String.fromCharCode(parseInt(m[0], 8) & 0xff);
        continue;
      }
      if (n === 'c' && this.pos < s.length) { out += String.fromCharCode(s.charCodeAt(this.pos) & 0x1f); this.pos++; continue; }
      out += '\\' + n;
    }
    return out;
  }

  /** End of a simple command: assignments, reserved words, wrappers. */
  private flush(): void {
    let words = this.words;
    const here = this.hereStrings;
    this.words = [];
    this.hereStrings = [];
    if (words.length === 0) return;
    while (words.length > 0) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=/.exec(words[0]!.raw);
      if (!m) break;
      const value = words[0]!.value.slice(words[0]!.value.indexOf('=') + 1);
      if (value.length <= MAX_VAR) this.ctx.vars.set(m[1]!, m[0].endsWith('+=') ? (this.ctx.vars.get(m[1]!) ?? '') + value : value);
      words = words.slice(1);
    }
    while (words.length > 0 && !words[0]!.quoted && RESERVED_SKIP.has(words[0]!.value)) words = words.slice(1);
    if (words.length === 0 || (!words[0]!.quoted && RESERVED_DROP.has(words[0]!.value))) return;
    const expanded = expandWords(words);
    emit(expanded, this.wrappers, this.ctx, this.depth, here);
  }
}

/** Position of the closer matching an opener already consumed (or the end of text). */
function matchClose(s: string, from: number, open: string, close: string): number {
  let depth = 1;
  let p = from;
  while (p < s.length) {
    if (s[p] === '\\') { p += 2; continue; }
    if (s[p] === "'" && open !== '((' ) {
      const e = s.indexOf("'", p + 1);
      p = e < 0 ? s.length : e + 1;
      continue;
    }
    if (s.startsWith(close, p)) {
      depth--;
      if (depth === 0) return p;
      p += close.length;
      continue;
    }
    if (s.startsWith(open, p)) { depth++; p += open.length; continue; }
    p++;
  }
  return s.length;
}

interface Arg { value: string; dynamic: boolean; quoted: boolean }

/** Word splitting of known-variable expansions and `{a,b}` brace expansion of unquoted words. */
function expandWords(words: Word[]): Arg[] {
  const out: Arg[] = [];
  for (const w of words) {
    if (w.split) {
      for (const part of w.value.split(/[ \t\n]+/).filter(Boolean)) out.push({ value: part, dynamic: w.dynamic, quoted: w.quoted });
      continue;
    }
    if (!w.quoted && /\{[^{}]*,[^{}]*\}/.test(w.value)) {
      for (const v of braceExpand(w.value)) out.push({ value: v, dynamic: w.dynamic, quoted: false });
      continue;
    }
    out.push({ value: w.value, dynamic: w.dynamic, quoted: w.quoted });
  }
  return out;
}

function braceExpand(word: string): string[] {
  let results = [word];
  for (let round = 0; round < 4; round++) {
    const next: string[] = [];
    let changed = false;
    for (const r of results) {
      const m = /\{([^{}]*,[^{}]*)\}/.exec(r);
      if (!m) { next.push(r); continue; }
      changed = true;
      for (const alt of m[1]!.split(',')) next.push(r.slice(0, m.index) + alt + r.slice(m.index + m[0].length));
    }
    results = next.slice(0, MAX_BRACE);
    if (!changed) break;
  }
  return results;
}

function push(ctx: Ctx, args: Arg[], wrappers: string[]): void {
  if (args.length === 0 || ctx.out.length >= MAX_COMMANDS) return;
  const head = args[0]!;
  ctx.out.push({ argv: args.map((a) => a.value), wrappers, dynamic: head.dynamic || head.value === '' });
}

/** Wrapper options that take a value, per wrapper (short letters / long names). */
const OPTS: Record<string, { short: string; long: string[]; positional?: number }> = {
  sudo: { short: 'ugphrtCDRTU', long: ['--user', '--group', '--host', '--prompt', '--role', '--type', '--close-from', '--chdir', '--chroot', '--command-timeout', '--other-user'] },
  doas: { short: 'uC', long: [] },
  env: { short: 'uCS', long: ['--unset', '--chdir', '--split-string'] },
  nohup: { short: '', long: [] },
  exec: { short: 'a', long: [] },
  command: { short: '', long: [] },
  builtin: { short: '', long: [] },
  nice: { short: 'n', long: ['--adjustment'] },
  timeout: { short: 'sk', long: ['--signal', '--kill-after'], positional: 1 },
  time: { short: 'fo', long: ['--format', '--output'] },
  xargs: { short: 'adEILnPs', long: ['--arg-file', '--delimiter', '--eof', '--replace', '--max-lines', '--max-args', '--max-procs', '--max-chars', '--process-slot-var'] },
  stdbuf: { short: 'ioe', long: ['--input', '--output', '--error'] },
  setsid: { short: '', long: [] },
  ionice: { short: 'cnp', long: ['--class', '--classdata', '--pid'] },
  chroot: { short: '', long: ['--userspec', '--groups'], positional: 1 },
  busybox: { short: '', long: [] },
  flock: { short: 'wEc', long: ['--timeout', '--conflict-exit-code', '--command'], positional: 1 },
  strace: { short: 'abeEIopPsSuX', long: [] },
  ltrace: { short: 'aeEnopsSuwx', long: [] },
  chrt: { short: '', long: [], positional: 1 },
  taskset: { short: '', long: [], positional: 1 },
  unbuffer: { short: '', long: [] },
  coproc: { short: '', long: [] },
  caffeinate: { short: 't', long: [] },
  'sudoedit': { short: 'ugphrtCDRTU', long: [] },
};

/** Skips a wrapper's options (and `positional` operands); returns the index of the wrapped command. */
function skipOptions(args: Arg[], spec: { short: string; long: string[]; positional?: number }, name: string, found: { split?: string; cmd?: string }): number {
  let i = 1;
  while (i < args.length) {
    const a = args[i]!.value;
    if (a === '--') { i++; break; }
    if (name === 'env' && /^[A-Za-z_][A-Za-z0-9_]*=/.test(a)) { i++; continue; }
    if (name === 'nice' && /^-\d+$/.test(a)) { i++; continue; }
    if (!a.startsWith('-') || a === '-') break;
    if (a.startsWith('--')) {
      const [key, val] = a.split('=', 2) as [string, string | undefined];
      if ((key === '--split-string') ) { found.split = val ?? args[i + 1]?.value; i += val === undefined ? 2 : 1; return args.length; }
      if (key === '--command') { found.cmd = val ?? args[i + 1]?.value; return args.length; }
      i += spec.long.includes(key) && val === undefined ? 2 : 1;
      continue;
    }
    // Short cluster: the first letter that takes a value eats the rest of the cluster or the next word.
    let consumedNext = false;
    for (let k = 1; k < a.length; k++) {
      const ch = a[k]!;
      if (spec.short.includes(ch)) {
        const rest = a.slice(k + 1);
        const val = rest !== '' ? rest : args[i + 1]?.value;
        if (name === 'env' && ch === 'S' && val !== undefined) { found.split = val; return args.length; }
        if (name === 'flock' && ch === 'c' && val !== undefined) { found.cmd = val; return args.length; }
        if (rest === '') consumedNext = true;
        break;
      }
    }
    i += consumedNext ? 2 : 1;
  }
  for (let p = 0; p < (spec.positional ?? 0) && i < args.length; p++) i++;
  return i;
}

function reparse(text: string | undefined, ctx: Ctx, depth: number, wrappers: string[]): void {
  if (text !== undefined) parseNested(text, ctx, depth + 1, wrappers);
}

/** Emits one simple command, peeling wrappers off recursively. */
function emit(args: Arg[], wrappers: string[], ctx: Ctx, depth: number, hereStrings: string[] = []): void {
  if (args.length === 0 || depth > MAX_DEPTH || ctx.out.length >= MAX_COMMANDS) return;
  const name = basename(args[0]!.value);
  const inner = [...wrappers, name];

  if (SHELLS.has(name) || (name === 'busybox' && SHELLS.has(args[1]?.value ?? ''))) {
    let i = name === 'busybox' ? 2 : 1;
    let hasC = false;
    while (i < args.length) {
      const a = args[i]!.value;
      if (a === '--' || a === '-') { i++; break; }
      if (a.startsWith('--')) { i += ['--rcfile', '--init-file'].includes(a) ? 2 : 1; continue; }
      if (!/^[-+]/.test(a)) break;
      if (a.startsWith('-') && a.includes('c')) hasC = true;
      i += /[oO]/.test(a) ? 2 : 1;
    }
    if (hasC) return reparse(args[i]?.value, ctx, depth, inner);
    push(ctx, args, wrappers);
    // `bash <<< 'cmd'` and `bash -s` read commands from stdin; a here-string is visible to us.
    if (i >= args.length || args[i - 1]?.value === '-s') for (const h of hereStrings) reparse(h, ctx, depth, inner);
    return;
  }
  if (name === 'eval') return reparse(args.slice(1).map((a) => a.value).join(' '), ctx, depth, inner);
  if (name === 'trap') return reparse(args[1]?.value, ctx, depth, inner);
  if (name === 'su' || name === 'runuser') {
    const k = args.findIndex((a, j) => j > 0 && (a.value === '-c' || a.value === '--command' || a.value.startsWith('--command=')));
    push(ctx, args, wrappers);
    if (k > 0) reparse(args[k]!.value.startsWith('--command=') ? args[k]!.value.slice(10) : args[k + 1]?.value, ctx, depth, inner);
    return;
  }
  if (name === 'watch') {
    let i = 1;
    while (i < args.length && args[i]!.value.startsWith('-')) i += /^-(n|-interval)$|^-[a-z]*n$/.test(args[i]!.value) ? 2 : 1;
    return reparse(args.slice(i).map((a) => a.value).join(' '), ctx, depth, inner);
  }
  if (name === 'alias') {
    push(ctx, args, wrappers);
    for (const a of args.slice(1)) {
      const eq = a.value.indexOf('=');
      if (eq > 0) reparse(a.value.slice(eq + 1), ctx, depth, inner);
    }
    return;
  }
  if (name === 'find') {
    push(ctx, args, wrappers);
    for (let i = 1; i < args.length; i++) {
      if (!['-exec', '-execdir', '-ok', '-okdir'].includes(args[i]!.value)) continue;
      let j = i + 1;
      while (j < args.length && args[j]!.value !== ';' && args[j]!.value !== '+') j++;
      emit(args.slice(i + 1, j), inner, ctx, depth + 1);
      i = j;
    }
    return;
  }
  const spec = OPTS[name];
  if (spec) {
    const found: { split?: string; cmd?: string } = {};
    const i = skipOptions(args, spec, name, found);
    if (found.split !== undefined) {
      // `env -S 'rm -rf /'`: the string is split into words and run.
      parseNested(found.split + ' ' + args.slice(i).map((a) => a.value).join(' '), ctx, depth + 1, inner);
      return;
    }
    if (found.cmd !== undefined) return reparse(found.cmd, ctx, depth, inner);
    if (i >= args.length) return push(ctx, args, wrappers); // `sudo -i`, bare `xargs`: the wrapper itself runs
    return emit(args.slice(i), inner, ctx, depth + 1, hereStrings);
  }
  push(ctx, args, wrappers);
}
