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
