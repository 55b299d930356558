/**
 * Shapes and limits shared by the shell splitter (`shell-words.ts`), its lexing helpers
 * (`shell-lexer.ts`) and the wrapper unwrapping (`shell-wrappers.ts`).
 */

export interface SimpleCommand {
  /** De-quoted words; argv[0] is the command as typed (`/bin/rm`, not `rm`). */
  argv: string[];
  /** Wrappers peeled off, outermost first, as basenames (`sudo`, `env`, `bash`). */
  wrappers: string[];
  /** argv[0] depends on something the splitter cannot know: an unknown variable, a command substitution or a glob. */
  dynamic: boolean;
  /**
   * Per word of argv: it holds an unresolved expansion, a substitution or an unquoted glob, so
   * its text is not what the command gets. Absent where the splitter fell back to blank-split words.
   */
  argDynamic?: boolean[];
}

export interface Word {
  value: string;
  /** Source text, to tell `a=b` (assignment) from `'a=b'` (a command name). */
  raw: string;
  quoted: boolean;
  /** Holds an unresolved expansion, a substitution or an unquoted glob. */
  dynamic: boolean;
  /** Holds an unquoted expansion of a known variable: split on blanks like bash does. */
  split: boolean;
}

/** A word after expansion, as the wrapper logic sees it. */
export interface Arg { value: string; dynamic: boolean; quoted: boolean }

export interface Ctx {
  out: SimpleCommand[];
  vars: Map<string, string>;
  /** Work left; every loop step spends one, so hostile input cannot hang us. */
  budget: number;
  /** Parses `text` as a command list at `depth`; injected so the wrapper logic need not import the parser. */
  parse: (text: string, depth: number, wrappers: string[]) => void;
  /** Judges only the `$(…)`, backticks and `${…}` in `text` (a prompt string). */
  scan: (text: string, depth: number, wrappers: string[]) => void;
}

/** Bounds that keep hostile input from recursing or emitting without end. */
export const MAX_DEPTH = 12;
export const MAX_COMMANDS = 512;
