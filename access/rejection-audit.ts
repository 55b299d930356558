/**
 * Audit lines for refused tokens, rate-limited per source (issue 12). A client hammering the
 * API or a broker with bad tokens must not grow the audit log without bound, yet nothing may be
 * dropped silently: per source (listener + client address) the first `burst` refusals of each
 * window are written as they come, the rest are counted and written as one
 * `token.rejected.suppressed` line with the count when the window ends (or at close).
 */
import type { AuditEvent, AuditLog } from '../recorder/audit.types.js';
import { auditEvent } from '../recorder/audit-events.js';

export interface RejectionAuditOptions {
  /** Lines written as they come per source and window. Default 5. */
  burst?: number;
  /** Window length, ms. Default 60 s. */
  windowMs?: number;
  /** Sources tracked at once; beyond that they share one bucket, so memory stays bounded. Default 10,000. */
  maxSources?: number;
  now?: () => number;
}

interface Bucket { start: number; written: number; suppressed: number; reasons: Record<string, number>; via: string; client: string }

const MANY = '(many sources)';

export class RejectionAudit {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly maxSources: number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly audit: AuditLog, opts: RejectionAuditOptions = {}) {
    this.burst = opts.burst ?? 5;
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxSources = opts.maxSources ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.timer = setInterval(() => void this.flush(false).catch(() => undefined), this.windowMs);
    this.timer.unref();
  }

  /** Records one refusal: written now, or counted for the window's summary line. */
  async rejected(event: AuditEvent & { via: string; reason: string; client?: string }, source?: string): Promise<void> {
    const client = source ?? event.client ?? 'unknown';
    let key = `${event.via}|${client}`;
    if (!this.buckets.has(key) && this.buckets.size >= this.maxSources) key = `${event.via}|${MANY}`;
    const now = this.now();
    let b = this.buckets.get(key);
    if (b && now - b.start >= this.windowMs) {
      await this.summarise(b);
      b = undefined;
    }
    if (!b) {
      b = { start: now, written: 0, suppressed: 0, reasons: {}, via: event.via, client: key.endsWith(MANY) ? MANY : client };
      this.buckets.set(key, b);
    }
    if (b.written < this.burst) {
      b.written++;
      await this.audit.append(event);
      return;
    }
    b.suppressed++;
    b.reasons[event.reason] = (b.reasons[event.reason] ?? 0) + 1;
  }

  /** Writes the summary of every window that ended (all of them with `all`). */
  async flush(all: boolean): Promise<void> {
    const now = this.now();
    for (const [key, b] of this.buckets) {
      if (!all && now - b.start < this.windowMs) continue;
      this.buckets.delete(key);
      await this.summarise(b);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush(true);
  }

  private async summarise(b: Bucket): Promise<void> {
    if (this.buckets.get(`${b.via}|${b.client}`) === b) this.buckets.delete(`${b.via}|${b.client}`);
    if (b.suppressed === 0) return;
    await this.audit.append(auditEvent('token.rejected.suppressed', {
      via: b.via, client: b.client, count: b.suppressed, reasons: b.reasons,
      since: new Date(b.start).toISOString(), until: new Date(this.now()).toISOString(),
    }));
  }
}
