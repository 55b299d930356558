/**
 * The client-to-upstream half of the relay, as a pure step over decoded frames: which bytes go
 * upstream unchanged, which messages the statement tracker rewrote, and which statements wait
 * for a reviewer. The step touches no socket; the session writes its result with writePieces.
 */

import type { Socket } from 'node:net';
import { decodeFrontendMessage, ProtocolError, type Frame } from './frontend-codec.js';
import type { UpstreamItem } from './review-gate.js';
import type { StatementTracker } from './statement-tracker.js';

export interface FrontendBatch {
  /** What to send upstream, in order: runs of untouched frames as one Buffer each, replacements, held statements. */
  items: UpstreamItem[];
  /** The tracker replaced or held at least one message (so `items` may hold several pieces). */
  rewritten: boolean;
  /** A statement waits for an approver: it and everything after it must queue behind the hold. */
  held: boolean;
  /** The client sent Terminate; frames after it are dropped. */
  terminate: boolean;
}

export function batchFrontend(frames: Frame[], tracker: StatementTracker): FrontendBatch {
  let pieces: UpstreamItem[] | undefined;
  let runStart: Frame | undefined;
  let runEnd: Frame | undefined;
  let terminate = false;
  let held = false;
  for (const f of frames) {
    const m = decodeFrontendMessage(f.code, f.body);
    if (m.type === 'password') throw new ProtocolError('unexpected password message');
    if (m.type === 'terminate') {
      terminate = true;
      break;
    }
    const rep = tracker.onFrontend(m);
    if (rep) {
      pieces ??= [];
      if (runStart) pieces.push(span(runStart, runEnd!));
      if (Buffer.isBuffer(rep)) pieces.push(rep);
      else {
        pieces.push({ review: rep, raw: f.raw });
        held = true;
      }
      runStart = runEnd = undefined;
    } else {
      runStart ??= f;
      runEnd = f;
    }
  }
  const items = pieces ?? [];
  if (runStart) items.push(span(runStart, runEnd!));
  return { items, rewritten: pieces !== undefined, held, terminate };
}

/** One Buffer over consecutive frames (all views of the same chunk): no copy. */
function span(first: Frame, last: Frame): Buffer {
  if (first === last) return first.raw;
  return Buffer.from(first.raw.buffer, first.raw.byteOffset, last.raw.byteOffset + last.raw.length - first.raw.byteOffset);
}

/** Writes `pieces` in order, corked when there are several; the last write's result (false: wait for 'drain'). */
export function writePieces(s: Socket, pieces: Buffer[]): boolean {
  if (pieces.length === 1) return s.write(pieces[0]!);
  let ok = true;
  s.cork();
  for (const p of pieces) ok = s.write(p);
  s.uncork();
  return ok;
}
