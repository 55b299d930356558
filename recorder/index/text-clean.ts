/**
 * Terminal text as it is indexed: escape sequences and control characters removed, and the
 * input track turned into typed lines. Same rules as the replay UI's scanner
 * (replay-ui/server/ui-scan.ts), kept here so the index depends on nothing above the core.
 */

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -/]*[0-~]|[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g;

export function plainText(s: string): string {
  return s.replace(/\r\n?/g, '\n').replace(ANSI, '');
}

/** Turns the `i` track into typed lines: Enter ends a line, backspace edits it, Ctrl-U clears it. */
export class TypedLines {
  private cur = '';
  private startT = 0;

  feed(t: number, data: string, onLine: (t: number, line: string) => void): void {
    for (const ch of data) {
      if (ch === '\r' || ch === '\n') {
        if (this.cur.trim()) onLine(this.startT, plainText(this.cur).trim());
        this.cur = '';
      } else if (ch === '\x7f' || ch === '\b') {
        this.cur = this.cur.slice(0, -1);
      } else if (ch === '\x15' || ch === '\x03') {
        this.cur = '';
      } else if (ch >= ' ') {
        if (!this.cur) this.startT = t;
        if (this.cur.length < 4096) this.cur += ch;
      }
    }
  }
}

const WRAPPERS = new Set(['sudo', 'doas', 'env', 'nohup', 'time', 'exec', 'nice', 'ionice', 'command', 'builtin', 'stdbuf', 'timeout']);

/**
 * The command a shell line runs, for display and filtering: the first word that is not an
 * assignment, an option of a wrapper or a wrapper (`sudo -u x /usr/bin/systemctl stop` →
 * `systemctl`). A heuristic: the policy engine's parser decides verdicts, not this.
 */
export function commandName(line: string): string {
  const words = line.trim().split(/\s+/);
  let wrapped = false;
  for (const w of words) {
    if (!w) continue;
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) continue;
    if (wrapped && w.startsWith('-')) continue;
    const base = w.replace(/^.*\//, '');
    if (WRAPPERS.has(base)) { wrapped = true; continue; }
    return base.slice(0, 100);
  }
  return (words[0] ?? '').slice(0, 100);
}

/** First keyword of a statement, upper-cased (`select` → `SELECT`), comments skipped. */
export function sqlName(sql: string): string {
  const s = sql.replace(/^(\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/)+/, '');
  return (/^[A-Za-z]+/.exec(s)?.[0] ?? '').toUpperCase();
}
