/**
 * The remote end of legacy scp (`scp [-v -r -p -d …] -t|-f [--] PATH…`, what `scp -O` runs on
 * the target), read by the shell-word parser (policies/shell-words.ts) so the paths are the
 * ones the target's shell hands to scp: `"/etc/passwd"`, `/etc/pass'wd'` and `/e\tc/passwd` are
 * all `/etc/passwd`. Every scp end of the line counts, under any wrapper (`env scp -t …`,
 * `bash -c 'scp -t …'`), and every operand of a source (`scp -f A B` sends both).
 *
 * A path rule is matched against every form the target may resolve the path to (`scpPathForms`):
 * as written, normalised (`a/../b`), and, when relative or `~/`, under the login's home
 * (`/root` for root, `/home/LOGIN` otherwise: an assumption, said in policies/README.md). A path
 * the parser cannot read as text (`$VAR`, `$(…)`, an unquoted glob, `~user`) is `unknown`: the
 * broker refuses it rather than guess.
 */
import { posix } from 'node:path';
import { basename, splitCommands } from '../../policies/shell-words.js';

export interface ScpEnd {
  direction: 'upload' | 'download';
  /** The first operand (a sink takes exactly one: scp refuses more). */
  path: string;
  /** Every operand, de-quoted. */
  paths: string[];
  /** -d / -r: files land under `path`. */
  dir: boolean;
  /** Some operand is not plain text to the parser (expansion, substitution, glob, `~user`). */
  unknown: boolean;
}

/** scp options that take a value (OpenSSH 9 `scp`'s getopt string). */
const VALUE_OPTS = new Set(['c', 'D', 'F', 'i', 'J', 'l', 'o', 'P', 'S', 'X']);

/** One simple command's scp end, or undefined when it is not `scp -t|-f` with an operand. */
function scpEnd(argv: string[], argDynamic: boolean[] | undefined): ScpEnd | undefined {
  let sink = false;
  let source = false;
  let dir = false;
  let i = 1;
  // OpenSSH's getopt stops at the first operand (no permutation): `scp /x -f` is a local copy.
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { i++; break; }
    if (!a.startsWith('-') || a === '-') break;
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      if (VALUE_OPTS.has(c)) { if (j === a.length - 1) i++; break; }
      if (c === 't') sink = true;
      else if (c === 'f') source = true;
      else if (c === 'd' || c === 'r') dir = true;
    }
  }
  const paths = argv.slice(i);
  if ((!sink && !source) || paths.length === 0) return undefined;
  const unknown = paths.some((p, k) => argDynamic?.[i + k] !== false || (p.startsWith('~') && !/^~(\/|$)/.test(p)));
  // scp checks -f before -t: with both it is a source (checked against the real scp).
  return { direction: source ? 'download' : 'upload', path: paths[0]!, paths, dir, unknown };
}

/** Every scp end the line runs (any wrapper, any position in a list or pipeline). */
export function scpEnds(command: string): ScpEnd[] {
  const out: ScpEnd[] = [];
  for (const c of splitCommands(command)) {
    if (basename(c.argv[0] ?? '') !== 'scp' || c.dynamic) continue;
    const end = scpEnd(c.argv, c.argDynamic);
    if (end) out.push(end);
  }
  return out;
}

/** `scp -t PATH` (upload) / `scp -f PATH` (download) as the line's first command. */
export function parseScp(command: string): ScpEnd | undefined {
  const first = splitCommands(command)[0];
  if (!first || first.argv[0] !== 'scp' || first.wrappers.length > 0 || first.dynamic) return undefined;
  return scpEnd(first.argv, first.argDynamic);
}

/**
 * `scp -t/-f PATH` alone (no wrapper, no second command) is the scp channel: the `scp` channel
 * rule decides, not command rules. Anything more (`scp -t x; rm y`, `env scp -t …`) is judged
 * as a command line as well.
 */
export function plainScp(command: string): ScpEnd | undefined {
  const cmds = splitCommands(command);
  return cmds.length === 1 ? parseScp(command) : undefined;
}

/**
 * The forms a path rule is matched against: as written, normalised, and the absolute path the
 * target resolves it to (`canonical`: normalised, a relative or `~/` path under the login's home).
 */
export function scpPathForms(path: string, login: string): { canonical: string; forms: string[] } {
  const home = login === 'root' ? '/root' : `/home/${login}`;
  const rel = path === '~' ? '' : path.startsWith('~/') ? path.slice(2) : path;
  const canonical = rel.startsWith('/') ? posix.normalize(rel) : posix.join(home, rel);
  return { canonical, forms: [...new Set([path, posix.normalize(path), canonical])] };
}
