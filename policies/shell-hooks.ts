/**
 * Shell state that runs commands later, for the shell splitter: a line that stores a command in
 * the interactive shell is judged as if it ran that command now, the way an alias value is
 * (shell-wrappers.ts). Each of these was a side door: the storing line passed, and the stored
 * command ran at the next prompt, key or completion without ever being typed at Enter.
 *
 * - `PROMPT_COMMAND=CMD` (also through export, declare, typeset, local, readonly): CMD runs
 *   before every prompt. `PS0`..`PS4`: their `$(…)` and backticks run at every prompt.
 * - `bind -x 'KEYS: CMD'` runs CMD on a key; `bind '"KEYS": "TEXT\n"'` types TEXT and Enter
 *   (the gate never sees that Enter). Dynamic: `bind -f FILE` (bindings we cannot see) and a
 *   key bound to a function that runs the line (`accept-line`, `edit-and-execute-command`…).
 * - `complete -C CMD` / `compgen -C CMD`: CMD runs at Tab.
 * - `history -s TEXT` puts TEXT in the history, for `!!` or Up. Up shows it on screen (judged);
 *   `!!`, `!-1`, `^old^new` are history expansion, which the splitter flags as dynamic.
 * - `:run-shell CMD`, `:new-window CMD`, `:exec CMD`…: a line read off tmux's or screen's command
 *   prompt (Ctrl-B :, Ctrl-A :); CMD runs in a shell.
 * - `fc` (but `fc -l`) re-runs history: dynamic. So is storing into a hook variable by
 *   `printf -v`, `read` or `mapfile`, whose value we cannot know.
 */

import type { Arg, Ctx } from './shell-words.types.js';

/**
 * tmux and screen commands that run a shell command, as typed at their command prompt: each
 * argument that is not an option is judged as a command line (option values too: the safe side).
 */
const MULTIPLEXER_RUNS = new Set(['run-shell', 'run', 'new-window', 'neww', 'split-window', 'splitw', 'respawn-pane', 'respawnp',
  'respawn-window', 'respawnw', 'display-popup', 'popup', 'pipe-pane', 'pipep', 'if-shell', 'if', 'new-session', 'new', 'screen', 'exec',
  // …later, on a key or an event, or by typing into a pane the gate does not see:
  'bind-key', 'bind', 'set-hook', 'command-prompt', 'confirm-before', 'confirm', 'display-menu', 'menu', 'send-keys', 'send', 'stuff',
  // …in every new window (default-command, default-shell):
  'set-option', 'set', 'set-window-option', 'setw']);
/** A file of multiplexer commands, which the gate cannot read. */
const MULTIPLEXER_FILES = new Set(['source-file', 'source']);
/** The builtins read below (the `:`-lines of a multiplexer prompt aside). */
const BUILTINS = new Set(['export', 'declare', 'typeset', 'local', 'readonly', 'bind', 'complete', 'compgen', 'history', 'fc', 'printf', 'read', 'mapfile', 'readarray']);
/** Assignment to a variable the interactive shell runs or expands at every prompt. */
export const HOOK_ASSIGNMENT = /^(PROMPT_COMMAND|PS[0-4])(\[[^\]]*\])?\+?=/;
const HOOK_NAME = /^(PROMPT_COMMAND|PS[0-4])$/;
const DECLARE = new Set(['export', 'declare', 'typeset', 'local', 'readonly']);
/** Readline functions that run the line: a key bound to one runs it with no Enter the gate sees. */
const RUNS_LINE = new Set(['accept-line', 'operate-and-get-next', 'edit-and-execute-command', 'shell-expand-line', 'vi-editing-mode', 'emacs-editing-mode']);
/** Readline escapes that type an Enter (accept-line) inside a macro. */
const ENTER_ESCAPE = /\\(C-[mMjJ]|n|r|012|015|x0[aAdD])/g;

/** Judges the value of `NAME=VALUE` where NAME is a hook variable. */
export function hookAssignment(name: string, value: string, ctx: Ctx, depth: number, wrappers: string[]): void {
  if (name === 'PROMPT_COMMAND') ctx.parse(value, depth + 1, wrappers);
  else if (HOOK_NAME.test(name)) ctx.scan(value, depth + 1, wrappers);
}

/**
 * The commands a shell builtin stores for later, judged now. Returns true when what it stores
 * cannot be read here (the builtin itself is then a dynamic command).
 */
export function shellHooks(name: string, args: Arg[], ctx: Ctx, depth: number, wrappers: string[]): boolean {
  // Every simple command of every judged line passes here: most are none of these.
  if (!BUILTINS.has(name) && name[0] !== ':') return false;
  const values = args.slice(1).map((a) => a.value);
  // tmux's and screen's command prompts (Ctrl-B :, Ctrl-A :) read `:COMMAND ARGS` off the screen.
  const prompted = name === ':' ? values[0] : name.startsWith(':') ? name.slice(1) : undefined;
  if (prompted !== undefined && MULTIPLEXER_FILES.has(prompted)) return true;
  if (prompted !== undefined && MULTIPLEXER_RUNS.has(prompted)) {
    const operands = values.slice(name === ':' ? 1 : 0).filter((v) => !v.startsWith('-'));
    // One quoted shell command, or (tmux 3, screen's exec) the words of a command run directly;
    // an operand may also be a tmux command itself (`bind-key x run-shell …`, a hook's command).
    for (const v of operands) {
      ctx.parse(v, depth + 1, wrappers);
      ctx.parse(`:${v}`, depth + 1, wrappers);
    }
    if (operands.length > 1) ctx.parse(operands.join(' '), depth + 1, wrappers);
    return false;
  }
  if (DECLARE.has(name)) {
    for (const v of values) {
      const m = HOOK_ASSIGNMENT.exec(v);
      if (m) hookAssignment(m[1]!, v.slice(v.indexOf('=') + 1), ctx, depth, wrappers);
    }
    return false;
  }
  if (name === 'bind') return bind(values, ctx, depth, wrappers);
  if (name === 'complete' || name === 'compgen') {
    const cmd = optionValue(values, 'C');
    if (cmd !== undefined) ctx.parse(cmd, depth + 1, wrappers);
    return false;
  }
  if (name === 'history') {
    const s = values.findIndex((v) => /^-[a-z]*s[a-z]*$/.test(v));
    if (s >= 0) ctx.parse(values.slice(s + 1).join(' '), depth + 1, wrappers);
    return false;
  }
  if (name === 'fc') return !values.some((v) => /^-[a-z]*l/.test(v));
  if (name === 'printf' || name === 'read' || name === 'mapfile' || name === 'readarray') {
    return values.some((v) => HOOK_NAME.test(v.replace(/^-v/, '').replace(/\[.*$/, '')));
  }
  return false;
}

/** `bind` arguments: `-x` specs run their command, macros with an Enter type theirs. */
function bind(values: string[], ctx: Ctx, depth: number, wrappers: string[]): boolean {
  let command = false;
  let hidden = false;
  for (const v of values) {
    if (/^-[a-zA-Z]+$/.test(v)) {
      if (v.includes('x')) command = true;
      if (v.includes('f')) hidden = true;
      continue;
    }
    const spec = bindingValue(v);
    if (spec === undefined) continue;
    if (command) ctx.parse(unquote(spec), depth + 1, wrappers);
    else if (RUNS_LINE.has(spec)) hidden = true;
    else if (/^["']/.test(spec)) {
      const typed = unquote(spec).replace(ENTER_ESCAPE, '\n');
      if (typed.includes('\n')) ctx.parse(typed, depth + 1, wrappers);
    }
  }
  return hidden;
}

/** The right side of `KEYS: VALUE` (KEYS bare or in double quotes), or undefined. */
function bindingValue(spec: string): string | undefined {
  let i = 0;
  while (spec[i] === ' ' || spec[i] === '\t') i++;
  if (spec[i] === '"') {
    i++;
    while (i < spec.length && spec[i] !== '"') i += spec[i] === '\\' ? 2 : 1;
    i++;
  } else {
    while (i < spec.length && spec[i] !== ':') i++;
  }
  while (spec[i] === ' ' || spec[i] === '\t') i++;
  if (spec[i] !== ':') return undefined;
  return spec.slice(i + 1).trim();
}

function unquote(s: string): string {
  return s.length >= 2 && (s[0] === '"' || s[0] === "'") && s.at(-1) === s[0] ? s.slice(1, -1) : s;
}

/** The value of single-letter option `letter` (`-C cmd`, `-Ccmd`, inside a cluster `-oC cmd`). */
function optionValue(values: string[], letter: string): string | undefined {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v === '--') return undefined;
    if (!/^-[a-zA-Z]/.test(v)) continue;
    const k = v.indexOf(letter, 1);
    if (k < 0) continue;
    return k < v.length - 1 ? v.slice(k + 1) : values[i + 1];
  }
  return undefined;
}
