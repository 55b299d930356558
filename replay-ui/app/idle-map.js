// Recording time ↔ the player's time under an idle limit.
//
// asciinema-player shortens every pause between events to `idleTimeLimit` (its timeLimiter,
// the first pause measured from 0), so its clock runs behind the recording's after each long
// pause. Markers, typed lines, search hits and `?t=` are recording times: seeking the player to
// them unmapped lands later than the moment (past the end, after a long idle session). The
// index's `gaps` ([from, to] of every pause longer than the shortest limit offered) give the map.
// `from` is where a window of a long recording starts (its events are shifted to start at 0).

/** The player's time for recording time `t`; `limit` undefined or 0 means no idle limit. */
export function toPlayer(t, gaps, limit, from = 0) {
  let p = t - from;
  if (!limit) return p;
  for (const [a, b] of gaps) {
    if (a >= t) break;
    if (b <= from) continue;
    const elapsed = Math.min(b, t) - Math.max(a, from);
    if (elapsed > limit) p -= elapsed - limit;
  }
  return p;
}

/** The recording time shown at player time `p` (the earliest, inside a shortened pause). */
export function toRecording(p, gaps, limit, from = 0) {
  if (!limit) return p + from;
  let shift = 0;
  for (const [a, b] of gaps) {
    if (b <= from) continue;
    const start = Math.max(a, from);
    // Player time reaches this pause's start at start - from - shift.
    if (p <= start - from - shift) break;
    const len = b - start;
    if (len <= limit) continue;
    const into = p - (start - from - shift);
    if (into < limit - 1e-9) return start + into;
    shift += len - limit;
  }
  return p + from + shift;
}

/**
 * How far past a moment a seek lands: the recorders stamp events in whole milliseconds
 * (Date.now()), and asciinema-player's seek shows every event at or before its target. A landing
 * a whole tick past `t` (the old +0.001) also showed what was stamped in the next tick: the
 * target's redraw that erases a denied line (proxy/ssh/enter-gate.ts CLEAR_LINE) comes a round
 * trip after its verdict marker, often 1 ms. 10 µs still covers the float error of the mapping
 * and the µs rounding of a window's event times (recorder/cast-reader.ts castWindow).
 */
export const SEEK_PAST = 1e-5;

/** The player's seek target that shows the screen at recording time `t`: every event stamped at or before it, none later. */
export function seekTarget(t, gaps, limit, from = 0) {
  return toPlayer(t, gaps, limit, from) + SEEK_PAST;
}

/**
 * asciinema-player's `startAt` option for recording time `t`: the loaded file's own time. The
 * player idle-maps it itself (prepareRecording: effectiveStartAt = startAt minus the pauses cut
 * before it), so a start given already mapped was mapped twice and began early after long pauses.
 */
export function startAtOption(t, from = 0) {
  return t - from + SEEK_PAST;
}
