/**
 * Wrapper unwrapping for the shell splitter: `sudo`, `env`, `bash -c`, `xargs`, `find -exec`,
 * `eval`, `su -c`, `watch`, `alias`… A wrapped command is emitted as its own simple command
 * (with the wrapper recorded), and text a wrapper runs is parsed again through `ctx.parse`.
 */

import { MAX_COMMANDS, MAX_DEPTH, type Arg, type Ctx } from './shell-words.types.js';

const SHELLS = new Set(['bash', 'sh', 'zsh', 'dash', 'ksh', 'ash', 'mksh', 'rbash', 'fish', 'csh', 'tcsh']);

export function basename(word: string): string {
  const i = word.lastIndexOf('/');
  return i >= 0 && i < word.length - 1 ? word.slice(i + 1) : word;
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
      ctx.parse(found.split + ' ' + args.slice(i).map((a) => a.value).join(' '), depth + 1, inner);
      return;
    }
    if (found.cmd !== undefined) return reparse(found.cmd, ctx, depth, inner);
    if (i >= args.length) return push(ctx, args, wrappers); // `sudo -i`, bare `xargs`: the wrapper itself runs
    return emit(args.slice(i), inner, ctx, depth + 1, hereStrings);
  }
  push(ctx, args, wrappers);
}
