import type { Identity } from '../../access/identity.types.js';
import type { HoldService } from '../../access/holds.js';
import type { ReviewRequest } from './statement-tracker.js';

/** A held statement in the upstream queue, with the client's original bytes. */
export interface HeldItem { review: ReviewRequest; raw: Buffer }
export type UpstreamItem = Buffer | HeldItem;

export interface ReviewGateIo {
  /** Writes pieces upstream (in order, as one corked write). */
  writeUpstream(pieces: Buffer[]): void;
  pauseClient(): void;
  resumeClient(): void;
  /** Waits for the decision; resolves with what goes upstream in the statement's place. */
  decide(item: HeldItem): Promise<Buffer>;
  closed(): boolean;
}

/**
 * Keeps the upstream leg in protocol order while a `review` verdict waits for an approver:
 * the held message and everything the client sent after it (the rest of its extended batch up
 * to Sync, pipelined queries) queue here, and the client socket is paused so no more is read.
 * When the decision comes, the held message goes upstream as sent (approved) or as a
 * statement that fails to parse (refused: the server aborts the batch or transaction itself),
 * then the queue drains up to the next held statement, and reading resumes.
 */
export class ReviewGate {
  private readonly queue: UpstreamItem[] = [];
  private waiting = false;

  constructor(private readonly io: ReviewGateIo) {}

  /** True while anything is held: new client bytes must queue behind it. */
  get active(): boolean {
    return this.waiting || this.queue.length > 0;
  }

  /** Queues items (buffers are copied: they outlive the chunk they were read from). */
  push(items: UpstreamItem[]): void {
    for (const it of items) this.queue.push(Buffer.isBuffer(it) ? Buffer.from(it) : { review: it.review, raw: Buffer.from(it.raw) });
    this.pump();
  }

  private pump(): void {
    if (this.waiting || this.io.closed()) return;
    const run: Buffer[] = [];
    while (this.queue.length) {
      const head = this.queue[0]!;
      if (Buffer.isBuffer(head)) {
        run.push(head);
        this.queue.shift();
        continue;
      }
      if (run.length) this.io.writeUpstream(run.splice(0));
      this.waiting = true;
      this.io.pauseClient();
      this.io.decide(head).then(
        (bytes) => {
          this.waiting = false;
          this.queue[0] = bytes;
          this.pump();
        },
        () => {
          this.waiting = false;
          this.queue[0] = head.review.refuse({ decision: 'failed' }, 'the review hold failed; statement not run');
          this.pump();
        },
      );
      return;
    }
    if (run.length) this.io.writeUpstream(run);
    this.io.resumeClient();
  }
}

export interface HoldContext {
  holds: HoldService;
  identity: Identity;
  target: string;
  login: string;
  sessionId: string | undefined;
  timeoutMs: number;
  signal: AbortSignal;
  /** Tells the client (a NoticeResponse). */
  notice(text: string): void;
  /** A marker line in the recording. */
  mark(fields: Record<string, unknown>): void;
  /** True when the client cancelled (CancelRequest) while waiting. */
  canceled(): boolean;
}

/** Creates the hold, tells the client how to get it approved, waits, and returns the bytes to send upstream. */
export async function holdStatement(ctx: HoldContext, item: HeldItem): Promise<Buffer> {
  const { review } = item;
  const v = review.verdict;
  let id: string;
  try {
    const hold = await ctx.holds.create(ctx.identity, { kind: 'sql', protocol: 'postgres', target: ctx.target, login: ctx.login, text: review.sql, rule: v.rule, message: v.message, sessionId: ctx.sessionId }, ctx.timeoutMs);
    id = hold.id;
  } catch {
    return review.refuse({ decision: 'failed' }, 'statement needs review, but the review hold could not be created; not run');
  }
  ctx.mark({ type: 'hold', hold: id, status: 'pending', sql: review.sql.slice(0, 2000), rule: v.rule });
  const why = v.message ? ` (${v.message})` : v.rule ? ` (rule ${v.rule})` : '';
  ctx.notice(`waiting for approval: pam approve-command ${id}${why}`);
  const status = await ctx.holds.wait(id, ctx.signal);
  ctx.mark({ type: 'hold', hold: id, status: ctx.canceled() ? 'canceled' : status });
  if (status === 'approved') {
    review.approve(id);
    return item.raw;
  }
  if (ctx.canceled()) return review.refuse({ hold: id, decision: 'canceled' }, 'canceling statement due to user request (it was waiting for approval)', '57014');
  if (status === 'denied') return review.refuse({ hold: id, decision: 'denied' }, `statement refused by an approver (${id})`);
  return review.refuse({ hold: id, decision: 'expired' }, `no approver decided in time (${id}); statement not run`);
}
