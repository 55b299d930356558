import { NO_CACHE, type ReaderCacheLike } from './reader-cache.js';
import { firstLine, lineBatches, type RecordingLine } from './recording-lines.js';
import { TypedLines } from './typed-line.js';

/** One asciicast v2 event: seconds since the start, type (`o` output, `i` input, `r` resize, `m` marker), data. */
export type CastEvent = [number, string, string];

/** A complete event line with its time and type read from the line's prefix, the data left unparsed. */
export interface CastLine extends RecordingLine {
  t: number;
  type: string;
}

/** `[12.345678, "o", …` → time and type without parsing the whole line (output is the bulk). */
const PREFIX = /^\[\s*([0-9.eE+-]+)\s*,\s*"([a-z])"/;

/** Parses one event line; undefined for the header, a torn line or anything else. */
export function parseCastEvent(line: string): CastEvent | undefined {
  try {
    const e = JSON.parse(line) as unknown;
    if (Array.isArray(e) && typeof e[0] === 'number' && typeof e[1] === 'string' && typeof e[2] === 'string') return e as CastEvent;
  } catch {
    // A torn last line of a live file: skipped.
  }
  return undefined;
}

/**
 * The event lines of an asciicast file from byte `start` (the header and torn lines skipped),
 * in batches, time and type read from the prefix only: the cheap pass for indexing, where only
 * markers and input need their data parsed (`parseCastEvent(line.text)`).
 */
export async function* castLineBatches(path: string, start = 0): AsyncGenerator<CastLine[]> {
  for await (const batch of lineBatches(path, start)) {
    const out: CastLine[] = [];
    for (const line of batch) {
      if (!line.complete) continue;
      const m = PREFIX.exec(line.text);
      if (m) out.push({ text: line.text, offset: line.offset, bytes: line.bytes, complete: true, t: Number(m[1]), type: m[2]! });
    }
    if (out.length) yield out;
  }
}

/** Every event of an asciicast file in order, parsed (the header and torn lines skipped). */
export async function* castEvents(path: string, start = 0): AsyncGenerator<CastEvent> {
  for await (const batch of lineBatches(path, start)) {
    for (const line of batch) {
      const e = parseCastEvent(line.text);
      if (e) yield e;
    }
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
  /**
   * Byte offset of an event line about every CHECKPOINT_BYTES, for windowed loading, with the
   * terminal size in force there when a resize came before it.
   */
  checkpoints: { t: number; offset: number; size?: string }[];
  /**
   * Pauses between consecutive events (the first measured from 0) longer than MIN_GAP, as
   * [from, to] seconds: with them the viewer maps recording time to the player's idle-limited
   * time, which shortens every pause to the limit (replay-ui/app/idle-map.js).
   */
  gaps: [number, number][];
  bytes: number;
}

/** The shortest idle limit the viewer offers; shorter pauses are never compressed. */
export const MIN_GAP = 0.5;
const MAX_GAPS = 200_000;

/** Notes the pause before an event at `t` after one at `prev` (an index builder's step). */
export function noteGap(idx: CastIndex, prev: number, t: number): void {
  if (t - prev > MIN_GAP && idx.gaps.length < MAX_GAPS) idx.gaps.push([prev, t]);
}

const CHECKPOINT_BYTES = 256 * 1024;
const MAX_TYPED = 20_000;

/** A marker that records a refusal (written by the brokers' policy hooks). */
export const isDenial = (label: string): boolean => /^(denied|refused)\b/.test(label);

/**
 * Markers, typed lines, denials and seek checkpoints of an SSH recording, kept in `cache` until
 * the file changes. Only marker and input lines are JSON-parsed, so a 50 MB recording indexes quickly.
 */
export function castIndex(path: string, cache: ReaderCacheLike = NO_CACHE): Promise<CastIndex> {
  return cache.get(`cast:${path}`, path, async () => {
    const idx: CastIndex = { width: 80, height: 24, duration: 0, markers: [], typed: [], denials: 0, events: 0, checkpoints: [], gaps: [], bytes: 0 };
    const typed = new TypedLines();
    let nextCheckpoint = 0;
    let size: string | undefined;
    for await (const batch of lineBatches(path)) {
      for (const line of batch) {
        if (!line.complete) break;
        idx.bytes = line.offset + line.bytes;
        if (line.offset === 0) {
          readHeader(line.text, idx);
          continue;
        }
        const m = PREFIX.exec(line.text);
        if (!m) continue;
        const t = Number(m[1]);
        idx.events++;
        noteGap(idx, idx.duration, t);
        idx.duration = t;
        if (line.offset >= nextCheckpoint) {
          idx.checkpoints.push(size ? { t, offset: line.offset, size } : { t, offset: line.offset });
          nextCheckpoint = line.offset + CHECKPOINT_BYTES;
        }
        if (m[2] !== 'm' && m[2] !== 'i' && m[2] !== 'r') continue;
        const e = parseCastEvent(line.text);
        if (!e) continue;
        if (e[1] === 'r') size = e[2];
        else if (e[1] === 'm') {
          idx.markers.push({ t: e[0], label: e[2] });
          if (isDenial(e[2])) idx.denials++;
        } else {
          typed.feed(e[0], e[2], (lt, l) => { if (idx.typed.length < MAX_TYPED) idx.typed.push({ t: lt, line: l }); });
        }
      }
    }
    return idx;
  });
}

function readHeader(text: string, idx: CastIndex): void {
  try {
    const h = JSON.parse(text) as { width?: number; height?: number };
    idx.width = h.width ?? 80;
    idx.height = h.height ?? 24;
  } catch { /* keeps defaults */ }
}

/** Output kept ahead of a window so the screen is rebuilt at its start (a text keyframe). */
const KEYFRAME_CHARS = 64 * 1024;

/**
 * A window [from, from+span] of a recording as a standalone asciicast: the header, the last
 * size before `from` as an `r` event, one output event at 0 that replays the last
 * KEYFRAME_CHARS of output before `from` (rebuilding the screen), then the window's events
 * shifted to start at 0. An empty file (no header yet) gives an empty string.
 *
 * Reads from the second-last checkpoint before `from`, so a seek into a 50 MB recording reads
 * a few hundred KiB: every event at or after `from` lies past the last checkpoint strictly
 * before it, and the one before that leaves at least CHECKPOINT_BYTES of events for the keyframe.
 */
export async function castWindow(path: string, idx: CastIndex, from: number, span: number): Promise<string> {
  const header = await firstLine(path);
  if (!header) return '';
  let last = -1;
  while (last + 1 < idx.checkpoints.length && idx.checkpoints[last + 1]!.t < from) last++;
  const start = last > 0 ? idx.checkpoints[last - 1]! : undefined;
  const keyframe = new TextTail(KEYFRAME_CHARS);
  let size = start?.size;
  const out: string[] = [];
  const end = from + span;
  scan: for await (const batch of castLineBatches(path, start?.offset ?? 0)) {
    for (const { t, type, text } of batch) {
      if (t < from) {
        if (type === 'o') {
          const e = parseCastEvent(text);
          if (e) keyframe.push(e[2]);
        } else if (type === 'r') {
          const e = parseCastEvent(text);
          if (e) size = e[2];
        }
        continue;
      }
      if (t > end) break scan;
      const e = parseCastEvent(text);
      if (e) out.push(JSON.stringify([Math.max(0.001, Math.round((t - from) * 1e6) / 1e6), e[1], e[2]]));
    }
  }
  const lines = [header];
  if (size) lines.push(JSON.stringify([0, 'r', size]));
  let screen = keyframe.text();
  if (screen.length >= KEYFRAME_CHARS) screen = cutKeyframe(screen);
  if (screen) lines.push(JSON.stringify([0, 'o', screen]));
  lines.push(...out);
  return lines.join('\n') + '\n';
}

/** The last `max` characters of appended text, without copying them on every append. */
class TextTail {
  private parts: string[] = [];
  private length = 0;

  constructor(private readonly max: number) {}

  push(text: string): void {
    this.parts.push(text);
    this.length += text.length;
    // Drop whole parts that lie entirely before the last `max` characters.
    while (this.parts.length > 1 && this.length - this.parts[0]!.length >= this.max) this.length -= this.parts.shift()!.length;
  }

  text(): string {
    const all = this.parts.join('');
    return all.length > this.max ? all.slice(-this.max) : all;
  }
}

/**
 * A keyframe cut from longer output starts at a line boundary, not inside an escape sequence;
 * without a newline in it, at least not on the second half of a surrogate pair.
 */
function cutKeyframe(text: string): string {
  const nl = text.indexOf('\n');
  if (nl >= 0) return text.slice(nl + 1);
  const c = text.charCodeAt(0);
  return c >= 0xdc00 && c <= 0xdfff ? text.slice(1) : text;
}
