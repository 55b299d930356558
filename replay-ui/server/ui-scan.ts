import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { RecordingMeta } from '../../recorder/recording.types.js';

/** Escape sequences and control characters, removed before text is searched or shown. */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -/]*[0-~]|[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g;

export function plainText(s: string): string {
  return s.replace(/\r\n?/g, '\n').replace(ANSI, '');
}

/** Reads a recording line by line; stops early when `fn` returns false. */
export async function eachLine(path: string, fn: (line: string) => boolean | void): Promise<void> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of rl) {
      if (!line) continue;
      if (fn(line) === false) break;
    }
  } finally {
    rl.close();
    stream.destroy();
  }
}

export type CastEvent = [number, string, string];

function parseEvent(line: string): CastEvent | undefined {
  try {
    const e = JSON.parse(line) as unknown;
    if (Array.isArray(e) && typeof e[0] === 'number' && typeof e[1] === 'string' && typeof e[2] === 'string') return e as CastEvent;
  } catch {
    // A torn last line of a live file: skipped.
  }
  return undefined;
}

/** Turns the `i` track into typed lines: Enter ends a line, backspace edits it. */
export class TypedLines {
  private cur = '';
  private startT = 0;
  feed(t: number, data: string, onLine: (t: number, line: string) => void): void {
    for (const ch of data) {
      if (ch === '\r' || ch === '\n') {
        if (this.cur.trim()) onLine(this.startT, this.cur);
        this.cur = '';
      } else if (ch === '\x7f' || ch === '\b') {
        this.cur = this.cur.slice(0, -1);
      } else if (ch === '\x15') {
        this.cur = '';
      } else if (ch >= ' ' && ch !== '\x7f') {
        if (!this.cur) this.startT = t;
        if (this.cur.length < 4096) this.cur += ch;
      }
    }
    this.cur = plainText(this.cur);
  }
}

export interface CastIndex {
  width: number;
  height: number;
  duration: number;
  markers: { t: number; label: string }[];
  typed: { t: number; line: string }[];
  denials: number;
  events: number;
}

export interface StatementRow {
  n: number;
  t: string;
  offset: number;
  type: string;
  protocol?: string;
  sql: string | null;
  duration_ms?: number;
  rows?: number;
  tag?: string;
  sqlstate?: string;
  error?: string;
  verdict?: { action: string; rule?: string; message?: string };
  params: number;
  copy?: unknown;
}

const isDenial = (label: string) => /^(denied|refused)\b/.test(label);

const cache = new Map<string, { size: number; mtimeMs: number; value: unknown }>();

async function cached<T>(key: string, path: string, build: () => Promise<T>): Promise<T> {
  const st = await stat(path);
  const hit = cache.get(key);
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.value as T;
  const value = await build();
  if (cache.size > 200) cache.delete(cache.keys().next().value!);
  cache.set(key, { size: st.size, mtimeMs: st.mtimeMs, value });
  return value;
}

/** Markers, typed lines and denials of an SSH recording (cached until the file changes). */
export function castIndex(path: string): Promise<CastIndex> {
  return cached(`cast:${path}`, path, async () => {
    const idx: CastIndex = { width: 80, height: 24, duration: 0, markers: [], typed: [], denials: 0, events: 0 };
    const typed = new TypedLines();
    let first = true;
    await eachLine(path, (line) => {
      if (first) {
        first = false;
        try {
          const h = JSON.parse(line) as { width?: number; height?: number };
          idx.width = h.width ?? 80;
          idx.height = h.height ?? 24;
        } catch { /* keeps defaults */ }
        return;
      }
      const e = parseEvent(line);
      if (!e) return;
      idx.events++;
      idx.duration = e[0];
      if (e[1] === 'm') {
        idx.markers.push({ t: e[0], label: e[2] });
        if (isDenial(e[2])) idx.denials++;
      } else if (e[1] === 'i') {
        typed.feed(e[0], e[2], (t, l) => { if (idx.typed.length < 20_000) idx.typed.push({ t, line: l }); });
      }
    });
    return idx;
  });
}

/** Statement lines of a Postgres recording, parameters left out (they come on demand). */
export function statementRows(path: string): Promise<{ start: string | undefined; rows: StatementRow[]; denials: number }> {
  return cached(`jsonl:${path}`, path, async () => {
    const rows: StatementRow[] = [];
    let start: number | undefined;
    let startIso: string | undefined;
    let denials = 0;
    let n = 0;
    await eachLine(path, (line) => {
      let e: Record<string, any>;
      try {
        e = JSON.parse(line) as Record<string, any>;
      } catch {
        return;
      }
      n++;
      const ms = Date.parse(String(e.t));
      if (start === undefined && Number.isFinite(ms)) { start = ms; startIso = String(e.t); }
      if (e.type !== 'statement' && e.type !== 'alert') return;
      if (e.verdict?.action === 'deny') denials++;
      rows.push({
        n, t: String(e.t), offset: start !== undefined && Number.isFinite(ms) ? (ms - start) / 1000 : 0, type: String(e.type), protocol: e.protocol,
        sql: typeof e.sql === 'string' ? e.sql.slice(0, 20_000) : null, duration_ms: e.duration_ms, rows: e.rows, tag: e.tag ?? (Array.isArray(e.tags) ? e.tags.join(', ') : undefined),
        sqlstate: e.error?.sqlstate, error: e.error?.message, verdict: e.verdict, params: Array.isArray(e.params) ? e.params.length : 0, copy: e.copy,
      });
    });
    return { start: startIso, rows, denials };
  });
}

/** The parameters of line `n` (1-based) of a Postgres recording. */
export async function statementParams(path: string, n: number): Promise<unknown[]> {
  let i = 0;
  let out: unknown[] = [];
  await eachLine(path, (line) => {
    if (++i !== n) return true;
    try {
      const e = JSON.parse(line) as { params?: unknown[] };
      out = Array.isArray(e.params) ? e.params : [];
    } catch { /* none */ }
    return false;
  });
  return out;
}

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

function snippet(text: string, at: number, len: number): string {
  const from = Math.max(0, at - 60);
  return (from > 0 ? '…' : '') + text.slice(from, at + len + 60).replace(/\s+/g, ' ').trim() + (at + len + 60 < text.length ? '…' : '');
}

/** Full-text search of one recording: terminal output, typed lines, markers, SQL text. */
export async function searchRecording(meta: RecordingMeta, path: string, q: string, limit: number): Promise<SearchHit[]> {
  const needle = q.toLowerCase();
  const hits: SearchHit[] = [];
  const base = { recording: meta.id, protocol: meta.protocol, user: meta.user, target: meta.target, start: meta.start };
  const add = (t: number, kind: SearchHit['kind'], text: string, at: number) => {
    hits.push({ ...base, t, kind, snippet: snippet(text, at, q.length) });
    return hits.length < limit;
  };
  if (meta.format === 'asciicast') {
    let tail = '';
    let lastOutputHit = -1;
    const typed = new TypedLines();
    let first = true;
    await eachLine(path, (line) => {
      if (first) { first = false; return true; }
      const e = parseEvent(line);
      if (!e) return true;
      const [t, type, data] = e;
      if (type === 'o') {
        const text = plainText(data);
        const hay = tail + text;
        const low = hay.toLowerCase();
        let from = Math.max(0, tail.length - q.length + 1);
        for (;;) {
          const at = low.indexOf(needle, from);
          if (at < 0) break;
          if (t !== lastOutputHit || hits.length === 0) {
            lastOutputHit = t;
            if (!add(t, 'output', hay, at)) return false;
          }
          from = at + needle.length;
        }
        tail = hay.slice(-200);
      } else if (type === 'i') {
        let go = true;
        typed.feed(t, data, (lt, l) => {
          const at = l.toLowerCase().indexOf(needle);
          if (at >= 0 && go) go = add(lt, 'typed', l, at);
        });
        if (!go) return false;
      } else if (type === 'm') {
        const at = data.toLowerCase().indexOf(needle);
        if (at >= 0 && !add(t, 'marker', plainText(data), at)) return false;
      }
      return true;
    });
  } else {
    let start: number | undefined;
    await eachLine(path, (line) => {
      let e: { t?: string; sql?: unknown };
      try {
        e = JSON.parse(line) as typeof e;
      } catch {
        return true;
      }
      const ms = Date.parse(String(e.t));
      if (start === undefined && Number.isFinite(ms)) start = ms;
      if (typeof e.sql !== 'string') return true;
      const at = e.sql.toLowerCase().indexOf(needle);
      if (at >= 0) return add(start !== undefined ? (ms - start) / 1000 : 0, 'sql', e.sql, at);
      return true;
    });
  }
  return hits;
}
