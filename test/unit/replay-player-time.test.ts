import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { castIndex, castWindow } from '../../recorder/cast-reader.js';
// @ts-expect-error plain ES module of the browser app, no types
import { seekTarget, startAtOption } from '../../replay-ui/app/idle-map.js';
// @ts-expect-error plain ES module of the browser app, no types
import { addHits, landing } from '../../replay-ui/app/pages/search-results.js';

/**
 * The viewer's seek and start options (replay-ui/app/idle-map.js) against asciinema-player's own
 * recording driver: its Core (the code inside the bundle the UI serves) runs in Node without a
 * DOM, fed a cast and gaps from the real index (recorder/cast-reader.ts). The screen is the output
 * the player fed its terminal. Event times are whole milliseconds, as the recorders stamp them.
 */

type Ev = [number, 'o' | 'm', string];
interface PlayerCore {
  addEventListener(name: string, f: (d: unknown) => void): void;
  terminalReady(): void;
  init(): Promise<void>;
  seek(where: number): Promise<unknown>;
  play(): Promise<unknown>;
  pause(): Promise<unknown>;
  stop(): Promise<unknown>;
}
let Core: new (src: object, opts: object) => PlayerCore;
let dir: string;
let n = 0;

beforeAll(async () => {
  const dist = join(createRequire(import.meta.url).resolve('asciinema-player'), '..');
  const core = (await readdir(dist)).find((f) => /^core-.*\.js$/.test(f));
  expect(core).toBeDefined();
  Core = ((await import(pathToFileURL(join(dist, core!)).href)) as { C: typeof Core }).C;
  dir = await mkdtemp(join(tmpdir(), 'pam-player-time-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const castOf = (events: Ev[]) => [JSON.stringify({ version: 2, width: 40, height: 10 }), ...events.map((e) => JSON.stringify(e))].join('\n') + '\n';
const screenAt = (events: Ev[], t: number) => events.filter((e) => e[1] === 'o' && e[0] <= t).map((e) => e[2]).join('');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function indexed(events: Ev[]) {
  const path = join(dir, `r${n++}.cast`);
  await writeFile(path, castOf(events));
  return { path, idx: await castIndex(path) };
}

/** What the player feeds its terminal for `cast` with `opts`, after `act`. */
async function played(cast: string, opts: object, act: (c: PlayerCore) => Promise<unknown>): Promise<string> {
  const c = new Core({ data: cast }, { logger: quiet, preload: true, ...opts });
  let out = '';
  c.addEventListener('output', (d) => { out += Array.isArray(d) ? d.join('') : String(d); });
  c.terminalReady();
  await c.init();
  await act(c);
  await c.stop();
  return out;
}

/** Output events in whole ms with long pauses among them, some 1 ms apart; one of them is the moment. */
const recordingArb = fc.array(fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 400 }), fc.integer({ min: 2500, max: 9000 })), { minLength: 2, maxLength: 30 })
  .chain((steps) => fc.tuple(fc.constant(steps), fc.nat({ max: steps.length - 1 })))
  .map(([steps, at]) => {
    let ms = 0;
    const events = steps.map((d, i): Ev => [(ms += d) / 1000, 'o', `<${i}>`]);
    return { events, t: events[at]![0] };
  });
const limitArb = fc.constantFrom(0, 0.5, 1, 2, 5);

describe('the viewer on the player\'s clock', () => {
  it('a seek to recording time t shows every event stamped up to t and none a tick later', async () => {
    await fc.assert(fc.asyncProperty(recordingArb, limitArb, async ({ events, t }, limit) => {
      const { idx } = await indexed(events);
      const out = await played(castOf(events), limit ? { idleTimeLimit: limit } : {}, (c) => c.seek(seekTarget(t, idx.gaps, limit)));
      expect(out).toBe(screenAt(events, t));
    }), { numRuns: 60 });
  });

  it('the seek lands so in a window of a long recording too (its events counted from the window\'s start)', async () => {
    await fc.assert(fc.asyncProperty(recordingArb, limitArb, async ({ events, t }, limit) => {
      const { path, idx } = await indexed(events);
      const from = Number(Math.max(0, t - 1).toFixed(3));
      const win = await castWindow(path, idx, from, 600);
      const out = await played(win, limit ? { idleTimeLimit: limit } : {}, (c) => c.seek(seekTarget(t, idx.gaps, limit, from)));
      // The window rebuilds the screen before `from` with one keyframe event, then the same events.
      expect(out).toBe(screenAt(events, t));
    }), { numRuns: 40 });
  });

  it('the player\'s own start (startAt, idle-mapped by the player) is the same moment, not one mapped twice', async () => {
    // Two long pauses before the moment: a start given already mapped is mapped again and lands
    // before the pauses' events.
    const events: Ev[] = [[0.5, 'o', 'a'], [5, 'o', 'b'], [10, 'o', 'c'], [20, 'o', 'd'], [20.001, 'o', 'e'], [21, 'o', 'f']];
    const { idx } = await indexed(events);
    // Almost stopped (1 µs a ms): play() positions at the start, and pause() comes long before the next event's timer.
    const start = (startAt: number) => played(castOf(events), { idleTimeLimit: 2, speed: 1e-3, startAt }, async (c) => { await c.play(); await c.pause(); });
    expect(await start(startAtOption(20))).toBe('abcd');
    // The fault this guards against, shown to fire: the player-time start (6.5 s) read as file time.
    expect(await start(seekTarget(20, idx.gaps, 2))).toBe('ab');
    await fc.assert(fc.asyncProperty(recordingArb, limitArb, async ({ events: evs, t }, limit) => {
      const out = await played(castOf(evs), { ...(limit ? { idleTimeLimit: limit } : {}), speed: 1e-3, startAt: startAtOption(t) }, async (c) => { await c.play(); await c.pause(); });
      expect(out).toBe(screenAt(evs, t));
    }), { numRuns: 40 });
  });

  it('a denied shell line\'s search result lands on the tick before its verdict, where the line is still on the screen', async () => {
    // As recorded: the echo, the verdict marker, the target's redraw erasing the line 1 ms later.
    const events: Ev[] = [[0.4, 'o', '# '], [4.048, 'o', 'shutdown -h now'], [4.09, 'm', 'denied: shutdown -h now: no (rule r)'], [4.091, 'o', '\r# \x1b[K'], [4.134, 'o', '\r\n[pam] denied: no\r\n']];
    const { idx } = await indexed(events);
    // The search's hits for it, as the sessions page groups them: one moment.
    const hit = { recording: 'r', time: '2026-12-01T00:00:04Z', snippet: '' };
    const recs = new Map<string, { moments: unknown[] }>();
    addHits(recs, [
      { ...hit, kind: 'command', t: 4.09, command: { via: 'shell', text: 'shutdown -h now', name: 'shutdown', verdict: 'deny' } },
      { ...hit, kind: 'marker', t: 4.09, snippet: 'denied: shutdown -h now: no (rule r)' },
      { ...hit, kind: 'output', t: 4.048, snippet: 'shutdown -h now' },
    ]);
    const moments = recs.get('r')!.moments;
    expect(moments).toHaveLength(1);
    const t = Number((landing(moments[0]) as number).toFixed(3));
    expect(t).toBe(4.089);
    const out = await played(castOf(events), { idleTimeLimit: 2 }, (c) => c.seek(seekTarget(t, idx.gaps, 2)));
    expect(out.endsWith('shutdown -h now')).toBe(true);
    // The verdict's own moment with the old landing (+1 ms) showed the erased line.
    const old = await played(castOf(events), { idleTimeLimit: 2 }, (c) => c.seek(seekTarget(4.09, idx.gaps, 2) + 0.001));
    expect(old.endsWith('\r# \x1b[K')).toBe(true);
  });
});
