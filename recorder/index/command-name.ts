/** Command names of shell lines and statements, for display and filtering in the index. */

const WRAPPERS = new Set(['sudo', 'doas', 'env', 'nohup', 'time', 'exec', 'nice', 'ionice', 'command', 'builtin', 'stdbuf', 'timeout']);
/** Wrapper options that take the next word as their value (`sudo -u web`, `nice -n 5`). */
const OPTION_ARGS = new Set(['-u', '-g', '-C', '-h', '-p', '-U', '-D', '-r', '-t', '-n', '-c', '-s', '-k', '--user', '--group']);

/**
 * The command a shell line runs, for display and filtering: the first word that is not an
 * assignment, an option of a wrapper or a wrapper (`sudo -u x /usr/bin/systemctl stop` →
 * `systemctl`). A heuristic: the policy engine's parser decides verdicts, not this.
 */
export function commandName(line: string): string {
  const words = line.trim().split(/\s+/);
  let wrapped = false;
  let skip = false;
  for (const w of words) {
    if (!w) continue;
    if (skip) { skip = false; continue; }
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) continue;
    if (wrapped && w.startsWith('-')) { skip = OPTION_ARGS.has(w); continue; }
    if (wrapped && /^\d+(\.\d+)?[smhd]?$/.test(w)) continue; // timeout's duration
    const base = w.replace(/^.*\//, '');
    if (WRAPPERS.has(base)) { wrapped = true; continue; }
    return base.slice(0, 100);
  }
  return (words[0] ?? '').slice(0, 100);
}

/** First keyword of a statement, upper-cased (`select` → `SELECT`), comments skipped. */
export function sqlName(sql: string): string {
  // The usual statement starts with its keyword: read the letters without the regexes.
  let n = 0;
  while (n < sql.length && isAsciiLetter(sql.charCodeAt(n))) n++;
  if (n > 0) return sql.slice(0, n).toUpperCase();
  const s = sql.replace(/^(\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/)+/, '');
  return (/^[A-Za-z]+/.exec(s)?.[0] ?? '').toUpperCase();
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}
