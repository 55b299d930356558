import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { castIndex, castWindow, type CastEvent } from '../../recorder/cast-reader.js';

const dir = await mkdtemp(join(tmpdir(), 'pam-castwin-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
const KEYFRAME = 64 * 1024;
let n = 0;

const header = (w = 100, h = 30) => JSON.stringify({ version: 2, width: w, height: h, timestamp: 1_700_000_000, env: {}, title: 't' });

async function file(lines: string[]): Promise<string> {
  const path = join(dir, `r${n++}.cast`);
  await writeFile(path, lines.length ? lines.join('\n') + '\n' : '');
  return path;
}

/** The window as the player gets it: header, then events. */
function parse(cast: string): { header: Record<string, unknown> | undefined; events: CastEvent[] } {
  const lines = cast.split('\n').filter(Boolean);
  return { header: lines[0] ? JSON.parse(lines[0]) : undefined, events: lines.slice(1).map((l) => JSON.parse(l) as CastEvent) };
}

/**
 * The window computed the slow way, from every event of the file: what castWindow must give
 * while reading only from a checkpoint.
 */
function reference(events: CastEvent[], from: number, span: number): CastEvent[] {
  let keyframe = '';
  let size: string | undefined;
  const out: CastEvent[] = [];
  for (const [t, type, data] of events) {
    if (t < from) {
      if (type === 'o') keyframe += data;
      if (type === 'r') size = data;
    } else if (t <= from + span) out.push([Math.max(0.001, Math.round((t - from) * 1e6) / 1e6), type, data]);
  }
  if (keyframe.length > KEYFRAME) keyframe = keyframe.slice(-KEYFRAME);
  if (keyframe.length >= KEYFRAME) keyframe = keyframe.slice(keyframe.indexOf('\n') + 1);
  return [...(size ? [[0, 'r', size] as CastEvent] : []), ...(keyframe ? [[0, 'o', keyframe] as CastEvent] : []), ...out];
}

/** A busy session: coloured output lines, keystrokes, markers and resizes, about 3 MB over 1000 s. */
function busy(): CastEvent[] {
  const events: CastEvent[] = [];
  for (let i = 0; i < 30_000; i++) {
    const t = Math.round(i * 33_333) / 1e6;
    events.push([t, 'o', `\u001b[32m${i}\u001b[0m ${'y'.repeat(i % 90)} ✓\r\n`]);
    if (i % 1000 === 0) events.push([t, 'm', `step ${i / 1000}`]);
    if (i % 777 === 0) events.push([t, 'i', 'ls\r']);
    if (i === 15) events.push([t, 'r', '120x40']);
    if (i === 20_000) events.push([t, 'r', '90x20']);
  }
  return events;
}

describe('castWindow', () => {
  it('gives an empty file no window, and a header-only file its header and nothing else', async () => {
    const empty = await file([]);
    const idx = await castIndex(empty);
    expect(idx).toMatchObject({ events: 0, checkpoints: [], bytes: 0, duration: 0 });
    expect(await castWindow(empty, idx, 0, 60)).toBe('');
    const bare = await file([header()]);
    const w = parse(await castWindow(bare, await castIndex(bare), 10, 60));
    expect(w.header).toMatchObject({ width: 100, height: 30 });
    expect(w.events).toEqual([]);
  });

  it('shifts the window to start at 0, with the size and the screen before it as a keyframe', async () => {
    const events: CastEvent[] = [[0.1, 'o', '$ '], [0.2, 'r', '132x43'], [1, 'o', 'first\r\n'], [2, 'i', 'x'], [5, 'o', 'in window'], [5, 'm', 'mark'], [9, 'o', 'late']];
    const path = await file([header(), ...events.map((e) => JSON.stringify(e))]);
    const w = parse(await castWindow(path, await castIndex(path), 2, 4));
    expect(w.header).toMatchObject({ width: 100, height: 30 });
    expect(w.events).toEqual([[0, 'r', '132x43'], [0, 'o', '$ first\r\n'], [0.001, 'i', 'x'], [3, 'o', 'in window'], [3, 'm', 'mark']]);
  });

  it('past the end: the last screen and size, no events', async () => {
    const events: CastEvent[] = [[1, 'o', 'hello\r\n'], [2, 'r', '90x20'], [3, 'o', 'bye\r\n']];
    const path = await file([header(), ...events.map((e) => JSON.stringify(e))]);
    const idx = await castIndex(path);
    expect(idx.duration).toBe(3);
    const w = parse(await castWindow(path, idx, 3600, 600));
    expect(w.events).toEqual([[0, 'r', '90x20'], [0, 'o', 'hello\r\nbye\r\n']]);
  });

  it('matches a full scan for windows anywhere in a 3 MB recording, reading from checkpoints', async () => {
    const events = busy();
    const path = await file([header(), ...events.map((e) => JSON.stringify(e))]);
    const idx = await castIndex(path);
    expect(idx.checkpoints.length).toBeGreaterThan(8);
    const froms = [0, 0.5, 0.51, 10, ...idx.checkpoints.flatMap((c) => [c.t, c.t + 0.000001, c.t - 0.01]), 666.66, 700, 999, 999.99, 1000.5];
    for (const from of froms) {
      for (const span of [0.05, 30]) {
        const w = parse(await castWindow(path, idx, from, span));
        expect(w.events, `from ${from} span ${span}`).toEqual(reference(events, from, span));
      }
    }
  });

  it('keeps UTF-8 whole: a character across a read chunk, and a keyframe cut inside a long line of emoji', async () => {
    // The first event line ends so that a 4-byte character straddles the 64 KiB read boundary.
    const h = header();
    const pre = `[0.1, "o", "`;
    const fill = 65_536 - (Buffer.byteLength(h) + 1 + Buffer.byteLength(pre)) - 2;
    const first = `${pre}${'a'.repeat(fill)}😀b"]`;
    // 80,000 UTF-16 units and no newline; a trailing x, if needed, puts the keyframe's cut on
    // the second half of a surrogate pair.
    let emoji = '😀'.repeat(40_000);
    const firstData = `${'a'.repeat(fill)}😀b`;
    if ((firstData.length + emoji.length - KEYFRAME - firstData.length) % 2 === 0) emoji += 'x';
    const events = [first, JSON.stringify([1, 'o', emoji]), JSON.stringify([2, 'o', 'after'])];
    const path = await file([h, ...events]);
    const idx = await castIndex(path);
    expect(idx.events).toBe(3);
    const all = parse(await castWindow(path, idx, 0, 10));
    expect(all.events[0]![2]).toBe(firstData);
    const w = parse(await castWindow(path, idx, 1.5, 10));
    const keyframe = w.events[0]![2];
    expect(w.events[0]![1]).toBe('o');
    expect(keyframe.length).toBeLessThanOrEqual(KEYFRAME);
    expect(keyframe.length).toBeGreaterThan(KEYFRAME - 2);
    // No half of a surrogate pair: the text survives UTF-8 unchanged, as the browser decodes it.
    expect(Buffer.from(keyframe, 'utf8').toString('utf8')).toBe(keyframe);
    expect(emoji.endsWith(keyframe)).toBe(true);
    expect(w.events.at(-1)).toEqual([0.5, 'o', 'after']);
  });
});
