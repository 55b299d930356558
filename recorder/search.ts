import { castEvents } from './cast-reader.js';
import { queryLogEvents } from './query-log-reader.js';
import type { RecordingMeta } from './recording.types.js';
import { plainText } from './terminal-escapes.js';
import { TypedLines } from './typed-line.js';

export interface SearchHit {
  recording: string;
  protocol: RecordingMeta['protocol'];
  user: string;
  target: string;
  start: string;
  t: number;
  kind: 'output' | 'typed' | 'marker' | 'sql';
  snippet: string;
}

/** Output characters kept from the previous event, so a match split across two events is found. */
const TAIL = 200;

function snippet(text: string, at: number, len: number): string {
  const from = Math.max(0, at - 60);
  return (from > 0 ? '…' : '') + text.slice(from, at + len + 60).replace(/\s+/g, ' ').trim() + (at + len + 60 < text.length ? '…' : '');
}

/**
 * Full-text search of one recording, case-insensitive, by scanning it: terminal output (as
 * plain text, one hit per event), typed lines, markers, SQL text. At most `limit` hits.
 */
export async function searchRecording(meta: RecordingMeta, path: string, q: string, limit: number): Promise<SearchHit[]> {
  const needle = q.toLowerCase();
  const hits: SearchHit[] = [];
  const base = { recording: meta.id, protocol: meta.protocol, user: meta.user, target: meta.target, start: meta.start };
  /** Adds a hit; false once the limit is reached. */
  const add = (t: number, kind: SearchHit['kind'], text: string, at: number): boolean => {
    hits.push({ ...base, t, kind, snippet: snippet(text, at, q.length) });
    return hits.length < limit;
  };
  if (meta.format === 'asciicast') {
    let tail = '';
    let lastOutputHit = -1;
    const typed = new TypedLines();
    for await (const [t, type, data] of castEvents(path)) {
      if (type === 'o') {
        const hay = tail + plainText(data);
        const low = hay.toLowerCase();
        let from = Math.max(0, tail.length - q.length + 1);
        for (;;) {
          const at = low.indexOf(needle, from);
          if (at < 0) break;
          if (t !== lastOutputHit || hits.length === 0) {
            lastOutputHit = t;
            if (!add(t, 'output', hay, at)) return hits;
          }
          from = at + needle.length;
        }
        tail = hay.slice(-TAIL);
      } else if (type === 'i') {
        let go = true;
        typed.feed(t, data, (lt, l) => {
          const at = l.toLowerCase().indexOf(needle);
          if (at >= 0 && go) go = add(lt, 'typed', l, at);
        });
        if (!go) return hits;
      } else if (type === 'm') {
        const at = data.toLowerCase().indexOf(needle);
        if (at >= 0 && !add(t, 'marker', plainText(data), at)) return hits;
      }
    }
    return hits;
  }
  let start: number | undefined;
  for await (const { event: e } of queryLogEvents(path)) {
    const ms = Date.parse(String(e.t));
    if (start === undefined && Number.isFinite(ms)) start = ms;
    if (typeof e.sql !== 'string') continue;
    const at = e.sql.toLowerCase().indexOf(needle);
    if (at >= 0 && !add(start !== undefined ? (ms - start) / 1000 : 0, 'sql', e.sql, at)) return hits;
  }
  return hits;
}
