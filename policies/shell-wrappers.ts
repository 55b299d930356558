/**
 * Wrapper unwrapping for the shell splitter: `sudo`, `env`, `bash -c`, `xargs`, `find -exec`,
 * `eval`, `su -c`, `watch`, `alias`… A wrapped command is emitted as its own simple command
 * (with the wrapper recorded), and text a wrapper runs is parsed again through `ctx.parse`.
 */

import { shellHooks } from './shell-hooks.js';
import { MAX_COMMANDS, MAX_DEPTH, type Arg, type Ctx } from './shell-words.types.js';

const SHELLS = new Set(['bash', 'sh', 'zsh', 'dash', 'ksh', 'ash', 'mksh', 'rbash', 'fish', 'csh', 'tcsh']);

export function basename(word: string): string {
  const i = word.lastIndexOf('/');
  return i >= 0 && i < word.length - 1 ? word.slice(i + 1) : word;
}

function push(ctx: Ctx, args: Arg[], wrappers: string[]): void {
  if (args.length === 0 || ctx.out.length >= MAX_COMMANDS) return;
  const head = args[0]!;
  ctx.out.push({ argv: args.map((a) => a.value), wrappers, dynamic: head.dynamic || head.value === '', argDynamic: args.map((a) => a.dynamic) });
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
  if (text !== undefined) ctx.parse(text, depth + 1, wrappers);
}

/** Emits one simple command, peeling wrappers off recursively. */
export function emit(args: Arg[], wrappers: string[], ctx: Ctx, depth: number, hereStrings: string[] = []): void {
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
  if (name === 'runuser' && args.some((a) => a.value === '-u' || a.value.startsWith('--user'))) {
    // `runuser -u U [--] CMD…`: the command after the options runs as U.
    const i = skipOptions(args, { short: 'ugGs', long: ['--user', '--group', '--supp-group', '--shell'] }, name, {});
    if (i < args.length) return emit(args.slice(i), inner, ctx, depth + 1, hereStrings);
  }
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
  if (runners(name, args, wrappers, inner, ctx, depth)) return;
  // What the shell stores to run later (a prompt hook, a key binding, history) is judged now.
  if (shellHooks(name, args, ctx, depth, inner)) return push(ctx, [{ ...args[0]!, dynamic: true }, ...args.slice(1)], wrappers);
  const spec = OPTS[name];
  if (spec) {
    const found: { split?: string; cmd?: string } = {};
    const i = skipOptions(args, spec, name, found);
    if (found.split !== undefined) {
      // `env -S 'rm -rf /'`: the string is split into words and run.
      ctx.parse(found.split + ' ' + args.slice(i).map((a) => a.value).join(' '), depth + 1, inner);
      return;
    }
    if (found.cmd !== undefined) return reparse(found.cmd, ctx, depth, inner);
    if (i >= args.length) return push(ctx, args, wrappers); // `sudo -i`, bare `xargs`: the wrapper itself runs
    return emit(args.slice(i), inner, ctx, depth + 1, hereStrings);
  }
  push(ctx, args, wrappers);
}

/** Interpreters whose inline-code option runs code the splitter cannot read: the unit is dynamic. */
const INLINE_CODE: Record<string, string[]> = {
  python: ['-c'], python2: ['-c'], python3: ['-c'], perl: ['-e', '-E'], ruby: ['-e'], node: ['-e', '--eval', '-p', '--print'],
  nodejs: ['-e', '--eval', '-p', '--print'], php: ['-r'], lua: ['-e'], Rscript: ['-e'], pwsh: ['-c', '-Command'], tclsh: [],
};
const AWKS = new Set(['awk', 'gawk', 'mawk', 'nawk', 'busybox-awk']);
const VIMS = new Set(['vi', 'vim', 'nvim', 'ex', 'view', 'vimdiff', 'rvim', 'gvim']);
/** git config keys whose value is a command git runs (a leading `!` too, for aliases and helpers). */
const GIT_COMMAND_KEY = /^(core\.(pager|editor|sshcommand|fsmonitor|hookspath|askpass)|pager\..+|sequence\.editor|diff\.external|diff\..+\.(textconv|command)|merge\..+\.driver|filter\..+\.(clean|smudge|process)|credential\.helper|alias\..+|gpg\.program|gpg\..+\.program|uploadpack\.packobjectshook|receive\.procreceiverefs|protocol\..+\.allow|ssh\.variant|remote\..+\.(uploadpack|receivepack))$/i;
const SSH_VALUE_OPTS = 'BbcDEeFIiJLlmOoPpQRSWw';

function pushDynamic(ctx: Ctx, args: Arg[], wrappers: string[]): void {
  if (args.length === 0 || ctx.out.length >= MAX_COMMANDS) return;
  ctx.out.push({ argv: args.map((a) => a.value), wrappers, dynamic: true, argDynamic: args.map((a) => a.dynamic) });
}

/**
 * Commands that run another command given as an argument (allow-list mode must see it):
 * `script -c`, `ssh host CMD`, `git -c core.pager=CMD`, `tar --checkpoint-action=exec=CMD`,
 * `vim -c '!CMD'`; and interpreters with inline code (`python3 -c`, `perl -e`, `awk` with
 * `system()`), which are marked dynamic. Returns true when it emitted the command.
 */
function runners(name: string, args: Arg[], wrappers: string[], inner: string[], ctx: Ctx, depth: number): boolean {
  const vals = args.map((a) => a.value);
  if (name === 'script') {
    push(ctx, args, wrappers);
    for (let i = 1; i < vals.length; i++) {
      const a = vals[i]!;
      if (a === '-c' || a === '--command') reparse(vals[i + 1], ctx, depth, inner);
      else if (a.startsWith('--command=')) reparse(a.slice(10), ctx, depth, inner);
      else if (/^-[a-zA-Z]*c$/.test(a)) reparse(vals[i + 1], ctx, depth, inner);
    }
    return true;
  }
  if (name === 'ssh') {
    push(ctx, args, wrappers);
    let i = 1;
    while (i < vals.length && vals[i]!.startsWith('-')) {
      const a = vals[i]!;
      const last = a[a.length - 1]!;
      i += a.length === 2 && SSH_VALUE_OPTS.includes(last) ? 2 : 1;
    }
    // vals[i] is the host; anything after it is the remote command line.
    if (i + 1 < vals.length) reparse(vals.slice(i + 1).join(' '), ctx, depth, inner);
    return true;
  }
  if (name === 'git') {
    push(ctx, args, wrappers);
    for (let i = 1; i < vals.length; i++) {
      const kv = vals[i] === '-c' ? vals[i + 1] : vals[i]!.startsWith('-c') && vals[i]!.includes('=') && !vals[i]!.startsWith('--') ? vals[i]!.slice(2) : undefined;
      if (kv === undefined) continue;
      const eq = kv.indexOf('=');
      const key = kv.slice(0, eq);
      const value = kv.slice(eq + 1);
      // An alias runs a shell command only with a leading `!`; without it, it names a git command.
      if (eq > 0 && GIT_COMMAND_KEY.test(key) && (!/^alias\./i.test(key) || value.startsWith('!'))) reparse(value.replace(/^!/, ''), ctx, depth, inner);
    }
    return true;
  }
  if (name === 'tar' || name === 'gtar' || name === 'bsdtar') {
    push(ctx, args, wrappers);
    for (let i = 1; i < vals.length; i++) {
      const a = vals[i]!;
      const m = /^--(checkpoint-action|to-command|use-compress-program|info-script|new-volume-script|rsh-command)=(.*)$/s.exec(a);
      if (m) reparse(m[1] === 'checkpoint-action' ? m[2]!.replace(/^exec=/, '') : m[2], ctx, depth, inner);
      else if (a === '-I' || a === '-F' || a === '--to-command' || a === '--use-compress-program') reparse(vals[i + 1], ctx, depth, inner);
    }
    return true;
  }
  if (VIMS.has(name)) {
    push(ctx, args, wrappers);
    for (let i = 1; i < vals.length; i++) {
      const a = vals[i]!;
      const cmd = a === '-c' || a === '--cmd' || a === '-S' ? vals[i + 1] : a.startsWith('+') ? a.slice(1) : undefined;
      if (cmd === undefined) continue;
      const bang = cmd.indexOf('!');
      if (bang >= 0) reparse(cmd.slice(bang + 1), ctx, depth, inner);
      else if (/system\(|terminal|\b(py3?|python3?|perl|lua|ruby)\b|\bcall\b|\bexe/i.test(cmd)) pushDynamic(ctx, args, wrappers);
    }
    return true;
  }
  if (name === 'less' || name === 'more') {
    // `less +'!cmd'` / `+cmd` runs less commands at start; `!` among them runs a shell command.
    push(ctx, args, wrappers);
    for (const a of vals.slice(1)) {
      const cmd = a.startsWith('+') ? a.slice(1) : a.startsWith('--cmd=') ? a.slice(6) : undefined;
      const bang = cmd?.indexOf('!') ?? -1;
      if (cmd !== undefined && bang >= 0) reparse(cmd.slice(bang + 1), ctx, depth, inner);
    }
    return true;
  }
  const inline = INLINE_CODE[name];
  if (inline) {
    if (vals.slice(1).some((a) => inline.includes(a) || inline.some((o) => o.length === 2 && a.startsWith('-') && !a.startsWith('--') && a.includes(o[1]!)))) pushDynamic(ctx, args, wrappers);
    else push(ctx, args, wrappers);
    return true;
  }
  if (AWKS.has(name)) {
    const prog = vals.slice(1).find((a) => !a.startsWith('-'));
    if (prog !== undefined && /system\s*\(|\|\s*getline|print[^;}]*\|/.test(prog)) pushDynamic(ctx, args, wrappers);
    else push(ctx, args, wrappers);
    return true;
  }
  return false;
}
