/**
 * What a relaying Postgres session says to its client outside the server's stream, and the
 * statements it holds for an approver: NoticeResponses slotted in at a message boundary, and the
 * `review` gate with its per-hold cancel (a CancelRequest withdraws a waiting statement, 57014).
 */
import type { Socket } from 'node:net';
import type { Authorized } from '../../access/access.types.js';
import type { HoldService } from '../../access/holds.js';
import * as msg from './backend-messages.js';
import { holdStatement, ReviewGate, type UpstreamItem } from './review-gate.js';

export interface NoticeIo {
  /** The client socket (it changes once, when the connection moves to TLS). */
  client(): Socket;
  /** True at a message boundary of what the client has received from the server. */
  atBoundary(): boolean;
  closed(): boolean;
  /** Each notice as it is sent (the query log keeps it). */
  recorded?(text: string): void;
}

/** NoticeResponses for the client, written at once at a boundary, else queued until the next one. */
export class ClientNotices {
  private queued: Buffer[] = [];

  constructor(private readonly io: NoticeIo) {}

  get pending(): boolean {
    return this.queued.length > 0;
  }

  send(text: string): void {
    if (this.io.closed()) return;
    this.io.recorded?.(text);
    const n = msg.noticeResponse('00000', text);
    if (this.io.atBoundary()) this.io.client().write(n);
    else this.queued.push(n);
  }

  /** Writes what was queued (call at a boundary); returns the socket's write result. */
  flush(): boolean {
    return this.io.client().write(Buffer.concat(this.queued.splice(0)));
  }
}

export interface SessionReviewContext {
  holds: HoldService | undefined;
  auth: Authorized;
  timeoutMs: number;
  upstream: Socket;
  client(): Socket;
  closed(): boolean;
  sessionId(): string | undefined;
  notice(text: string): void;
  /** A marker line in the recording. */
  mark(fields: Record<string, unknown>): void;
}

/** The review gate of one session (created on first hold) and the abort of the hold in progress. */
export class SessionReview {
  private gate: ReviewGate | undefined;
  private holdAbort: AbortController | undefined;
  private holdCanceled = false;

  constructor(private readonly ctx: SessionReviewContext) {}

  /** True while a statement waits: new client bytes must queue behind it. */
  get active(): boolean {
    return this.gate?.active ?? false;
  }

  push(items: UpstreamItem[]): void {
    this.reviewGate().push(items);
  }

  /** CancelRequest: the statement waiting for approval is withdrawn (57014). */
  cancel(): void {
    if (!this.holdAbort) return;
    this.holdCanceled = true;
    this.holdAbort.abort();
  }

  /** The session ended: a held statement is dropped with it (the hold expires). */
  drop(): void {
    this.holdAbort?.abort();
  }

  private reviewGate(): ReviewGate {
    const { ctx } = this;
    return (this.gate ??= new ReviewGate({
      writeUpstream: (pieces) => {
        ctx.upstream.cork();
        for (const p of pieces) ctx.upstream.write(p);
        ctx.upstream.uncork();
      },
      pauseClient: () => ctx.client().pause(),
      resumeClient: () => ctx.client().resume(),
      closed: () => ctx.closed(),
      decide: (item) => {
        const abort = (this.holdAbort = new AbortController());
        this.holdCanceled = false;
        const { auth } = ctx;
        return holdStatement({
          holds: ctx.holds!, identity: auth.identity, target: auth.target.name, login: auth.login, sessionId: ctx.sessionId(),
          timeoutMs: ctx.timeoutMs, signal: abort.signal,
          notice: (text) => ctx.notice(text),
          mark: (fields) => ctx.mark(fields),
          canceled: () => this.holdCanceled,
        }, item).finally(() => {
          if (this.holdAbort === abort) this.holdAbort = undefined;
        });
      },
    }));
  }
}
