import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
// @ts-expect-error plain ES module of the browser app, no types
import { toPlayer, toRecording } from '../../replay-ui/app/idle-map.js';

/** The player's own rule (asciinema-player timeLimiter): every pause between events is cut to the limit. */
function playerTimes(events: number[], limit: number): number[] {
  let prev = 0;
  let shift = 0;
  return events.map((t) => {
    const delta = t - prev - limit;
    prev = t;
    if (delta > 0) shift += delta;
    return t - shift;
  });
}
const gapsOf = (events: number[]) => {
  const gaps: [number, number][] = [];
  let prev = 0;
  for (const t of events) {
    if (t - prev > 0.5) gaps.push([prev, t]);
    prev = t;
  }
  return gaps;
};
const eventsArb = fc.array(fc.double({ min: 0.001, max: 20, noNaN: true }), { minLength: 1, maxLength: 40 }).map((ds) => {
  let t = 0;
  return ds.map((d) => (t += d));
});

describe('idle-map', () => {
  it('maps every event time to the time the player gives it, for every idle limit', () => {
    fc.assert(fc.property(eventsArb, fc.constantFrom(0.5, 1, 2, 5), (events, limit) => {
      const want = playerTimes(events, limit);
      const gaps = gapsOf(events);
      events.forEach((t, i) => expect(toPlayer(t, gaps, limit)).toBeCloseTo(want[i]!, 6));
    }));
  });

  it('maps back from the player to the recording at every event', () => {
    fc.assert(fc.property(eventsArb, fc.constantFrom(0.5, 1, 2, 5), (events, limit) => {
      const gaps = gapsOf(events);
      for (const t of events) expect(toRecording(toPlayer(t, gaps, limit), gaps, limit)).toBeCloseTo(t, 4);
    }));
  });

  it('no limit is the identity; a window starting at `from` counts its time from there', () => {
    expect(toPlayer(12, [[1, 10]], 0)).toBe(12);
    expect(toPlayer(12, [[1, 10]], 2)).toBe(5);
    // A window from 4: the pause is 6 s of it, cut to 2.
    expect(toPlayer(12, [[1, 10]], 2, 4)).toBe(4);
    expect(toRecording(4, [[1, 10]], 2, 4)).toBe(12);
  });
});
