import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
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

export interface CastIndex {
  width: number;
  height: number;
  duration: number;
  markers: { t: number; label: string }[];
  typed: { t: number; line: string }[];
  denials: number;
  events: number;
  /** Byte offset of an event line about every CHECKPOINT_BYTES, for windowed loading. */
  checkpoints: { t: number; offset: number }[];
  bytes: number;
}

const CHECKPOINT_BYTES = 256 * 1024;
/** `[12.345678, "o", …` → time and type without parsing the whole line (output is the bulk). */
const PREFIX = /^\[\s*([0-9.eE+-]+)\s*,\s*"([a-z])"/;

/**
 * Markers, typed lines, denials and seek checkpoints of an SSH recording, cached until the file
 * changes. Only marker and input lines are JSON-parsed, so a 50 MB recording indexes quickly.
 */
export function castIndex(path: string): Promise<CastIndex> {
  return cached(`cast:${path}`, path, async () => {
    const idx: CastIndex = { width: 80, height: 24, duration: 0, markers: [], typed: [], denials: 0, events: 0, checkpoints: [], bytes: 0 };
    const typed = new TypedLines();
    let first = true;
    let offset = 0;
    let nextCheckpoint = 0;
    await eachRawLine(path, (line, bytes) => {
      const at = offset;
      offset += bytes;
      if (first) {
        first = false;
        try {
          const h = JSON.parse(line) as { width?: number; height?: number };
          idx.width = h.width ?? 80;
          idx.height = h.height ?? 24;
        } catch { /* keeps defaults */ }
        return;
      }
      const m = PREFIX.exec(line);
      if (!m) return;
      const t = Number(m[1]);
      idx.events++;
      idx.duration = t;
      if (at >= nextCheckpoint) {
        idx.checkpoints.push({ t, offset: at });
        nextCheckpoint = at + CHECKPOINT_BYTES;
      }
      if (m[2] !== 'm' && m[2] !== 'i') return;
      const e = parseEvent(line);
      if (!e) return;
      if (e[1] === 'm') {
        idx.markers.push({ t: e[0], label: e[2] });
        if (isDenial(e[2])) idx.denials++;
      } else {
        typed.feed(e[0], e[2], (lt, l) => { if (idx.typed.length < 20_000) idx.typed.push({ t: lt, line: l }); });
      }
    });
    idx.bytes = offset;
    return idx;
  });
}

/** Like eachLine, with each line's byte length (newline included) for offsets. */
async function eachRawLine(path: string, fn: (line: string, bytes: number) => void, start = 0): Promise<void> {
  const stream = createReadStream(path, { start });
  let carry: Buffer = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let from = 0;
    for (;;) {
      const nl = buf.indexOf(10, from);
      if (nl < 0) break;
      fn(buf.toString('utf8', from, nl), nl + 1 - from);
      from = nl + 1;
    }
    carry = buf.subarray(from);
    buf = carry;
  }
}

async function firstLine(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(10);
    return buf.toString('utf8', 0, nl < 0 ? bytesRead : nl);
  } finally {
    await fh.close();
  }
}

/** Output kept ahead of a window so the screen is rebuilt at its start (a text keyframe). */
const KEYFRAME_CHARS = 64 * 1024;

/**
 * A window [from, from+span] of a recording as a standalone asciicast: the header, one output
 * event at 0 that replays the last KEYFRAME_CHARS of output before `from` (rebuilding the
 * screen), then the window's events shifted to start at 0. Reads only from the checkpoint
 * before the window, so a seek into a 50 MB recording reads a few hundred KiB.
 */
export async function castWindow(path: string, idx: CastIndex, from: number, span: number): Promise<string> {
  let startOffset = 0;
  const header = await firstLine(path);
  for (const c of idx.checkpoints) {
    if (c.t <= from) startOffset = c.offset;
    else break;
  }
  // Step back one more checkpoint or so, so the keyframe has enough output behind it.
  const back = idx.checkpoints.filter((c) => c.offset <= startOffset && startOffset - c.offset <= KEYFRAME_CHARS * 2);
  if (back.length) startOffset = back[0]!.offset;
  let keyframe = '';
  let size: string | undefined;
  const out: string[] = [];
  const end = from + span;
  const stream = createReadStream(path, { start: startOffset, encoding: 'utf8' });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of rl) {
      const m = PREFIX.exec(line);
      if (!m) continue;
      const t = Number(m[1]);
      if (t < from) {
        if (m[2] === 'o') {
          const e = parseEvent(line);
          if (e) keyframe = (keyframe + e[2]).slice(-KEYFRAME_CHARS);
        } else if (m[2] === 'r') {
          const e = parseEvent(line);
          if (e) size = e[2];
        }
        continue;
      }
      if (t > end) break;
      const e = parseEvent(line);
      if (e) out.push(JSON.stringify([Math.max(0.001, Math.round((t - from) * 1e6) / 1e6), e[1], e[2]]));
    }
  } finally {
    rl.close();
    stream.destroy();
  }
  const lines = [header];
  if (size) lines.push(JSON.stringify([0, 'r', size]));
  // A keyframe cut mid-way starts at a line boundary, not inside an escape sequence.
  if (keyframe.length >= KEYFRAME_CHARS) keyframe = keyframe.slice(keyframe.indexOf('\n') + 1);
  if (keyframe) lines.push(JSON.stringify([0, 'o', keyframe]));
  lines.push(...out);
  return lines.join('\n') + '\n';
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
