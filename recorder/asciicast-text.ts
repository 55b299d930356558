import { parseCastEvent } from './cast-reader.js';
import { stripOutputEscapes } from './terminal-escapes.js';

/**
 * Plain-text export of an asciicast v2 recording: output (`o`) events concatenated, with
 * escape sequences removed and carriage-return overwrites resolved per line, plus markers
 * (`m`) as `# [t] label` lines, so an auditor can grep a session.
 */
export function asciicastToText(cast: string, opts: { markers?: boolean } = {}): string {
  const markers = opts.markers ?? true;
  const lines = cast.split('\n');
  let out = '';
  let pendingMarkers: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const ev = lines[i] ? parseCastEvent(lines[i]!) : undefined;
    if (!ev) continue; // a torn last line after a crash
    if (ev[1] === 'o') out += ev[2];
    else if (ev[1] === 'm' && markers) {
      pendingMarkers.push(`# [${ev[0].toFixed(3)}] ${ev[2]}`);
      out += `\u0000M${pendingMarkers.length - 1}\u0000`;
    }
  }
  const text = renderPlain(stripOutputEscapes(out));
  return text.replace(/\u0000M(\d+)\u0000/g, (_m, n: string) => `\n${pendingMarkers[Number(n)]}\n`).replace(/\n{3,}/g, '\n\n');
}

/** Resolves \r (return to line start, later text overwrites) and \b, drops other controls. */
function renderPlain(s: string): string {
  const out: string[] = [];
  for (const raw of s.split('\n')) {
    let line: string[] = [];
    let col = 0;
    for (const ch of raw) {
      if (ch === '\r') col = 0;
      else if (ch === '\b') col = Math.max(0, col - 1);
      else if (ch === '\u0000' || ch >= ' ' || ch === '\t') {
        line[col++] = ch;
      }
    }
    out.push(line.join('').replace(/\s+$/, ''));
    line = [];
  }
  return out.join('\n');
}
