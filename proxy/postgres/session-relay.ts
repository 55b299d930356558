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
  /**
   * Frames after one that may change a pinned setting (tracker.barrier, setting-barrier.ts):
   * not yet noted by the tracker; they wait until every answer is in. Copied (they outlive the chunk).
   */
  rest: Frame[];
  /** The batch ended at such a frame: what the client sends next waits too (`SettingBarrier`). */
  barrier: boolean;
}

/**
 * Client frames held behind a statement that may change a pinned setting, until every answer
 * (and so any ParameterStatus) is in; then they are relayed in order (setting-barrier.ts).
 */
export class SettingBarrier {
  private waiting: Frame[] | undefined;

  get active(): boolean {
    return this.waiting !== undefined;
  }

  hold(rest: Frame[]): void {
    this.waiting = rest;
  }

  add(frames: Frame[]): void {
    this.waiting!.push(...copyFrames(frames));
  }

  /** The held frames once nothing is outstanding (they are handed back once), else undefined. */
  release(outstanding: number): Frame[] | undefined {
    if (!this.waiting || outstanding > 0) return undefined;
    const w = this.waiting;
    this.waiting = undefined;
    return copyFrames(w);
  }
}

/** Frames copied out of their chunks into one buffer (they stay views of one buffer, as `span` needs). */
export function copyFrames(frames: Frame[]): Frame[] {
  const all = Buffer.concat(frames.map((f) => f.raw));
  let at = 0;
  return frames.map((f) => {
    const raw = all.subarray(at, at + f.raw.length);
    at += f.raw.length;
    return { code: f.code, raw, body: raw.subarray(raw.length - f.body.length) };
  });
}

export function batchFrontend(frames: Frame[], tracker: StatementTracker): FrontendBatch {
  let pieces: UpstreamItem[] | undefined;
  let runStart: Frame | undefined;
  let runEnd: Frame | undefined;
  let terminate = false;
  let held = false;
  let rest: Frame[] = [];
  let barrier = false;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
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
    if (tracker.barrier) {
      tracker.barrier = false;
      barrier = true;
      rest = copyFrames(frames.slice(i + 1));
      break;
    }
  }
  const items = pieces ?? [];
  if (runStart) items.push(span(runStart, runEnd!));
  return { items, rewritten: pieces !== undefined, held, terminate, rest, barrier };
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
