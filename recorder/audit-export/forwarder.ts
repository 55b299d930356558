import type { AuditEntry, AuditEvent } from '../audit.types.js';
import type { Log } from '../../config/log.types.js';
import type { AuditSink } from './sinks.js';
import { Spool } from './spool.js';

export interface ForwarderStats { name: string; up: boolean; spoolBytes: number; spooledEvents: number; delivered: number; dropped: number }

export interface ForwarderDeps {
  name: string;
  sink: AuditSink;
  spoolDir: string;
  spoolMaxBytes: number;
  batchMax: number;
  /** Entries of the audit log after `seq` (catch-up after a restart, or entries another process wrote). */
  readAfter: (seq: number) => Promise<AuditEntry[]>;
  /** Appends an audit event (overflow and its end are audited). */
  audit: (event: AuditEvent) => Promise<unknown>;
  log: Log;
  /** Retry delays grow from `retryMinMs` to `retryMaxMs`. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/**
 * One sink's delivery loop. Intake (`take`) runs in audit order: an entry whose `seq` skips
 * ahead first pulls the missing ones from the audit log, so entries written by `pam secret` in
 * another process, or before a crash, are exported too. Every entry is spooled (spool.ts); the
 * loop sends the spool head in batches and commits after each delivered batch. While the sink
 * is down it retries with backoff, logging one line when it goes down and one when it is back.
 *
 * A full spool drops new entries and audits `audit_export.overflow` once per episode; when the
 * spool has room again (below half) `audit_export.resumed` says how many were lost from which
 * `seq` on, so the SIEM knows the gap (the entries stay in this node's audit log).
 */
export class AuditForwarder {
  private readonly spool: Spool;
  private intake: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private closed = false;
  private up = true;
  private delivered = 0;
  private droppedTotal = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly d: ForwarderDeps) {
    this.spool = Spool.open(d.spoolDir, d.name, d.spoolMaxBytes);
  }

  /** Starts delivering; a new sink starts at `currentSeq`, a known one catches up from its cursor. */
  start(currentSeq: number): void {
    if (this.spool.lastSeq < 0) this.spool.skipTo(currentSeq);
    else if (this.spool.lastSeq < currentSeq) this.intake = this.intake.then(() => this.catchUp(currentSeq));
    this.loop = this.run();
  }

  /** Called with every entry this process writes, in order. */
  take(entry: AuditEntry): void {
    this.intake = this.intake.then(async () => {
      if (entry.seq <= this.spool.lastSeq) return;
      if (entry.seq > this.spool.lastSeq + 1) await this.catchUp(entry.seq - 1);
      this.put(entry);
    }).catch((err) => this.d.log.error({ err, sink: this.d.name }, 'audit export: intake failed'));
  }

  /** The audit log grew, maybe from another process (`pam secret`): take in what is new. */
  poll(): void {
    this.intake = this.intake.then(() => this.catchUp(Number.MAX_SAFE_INTEGER))
      .catch((err) => this.d.log.error({ err, sink: this.d.name }, 'audit export: catch-up failed'));
  }

  stats(): ForwarderStats {
    return {
      name: this.d.name, up: this.up, spoolBytes: this.spool.pendingBytes, spooledEvents: this.spool.pendingEvents,
      delivered: this.delivered, dropped: this.droppedTotal,
    };
  }

  /** Waits up to `ms` for the spool to empty, then stops; what is left stays spooled for the next start. */
  async close(ms = 0): Promise<void> {
    await this.intake;
    const end = Date.now() + ms;
    while (this.up && this.spool.pendingEvents > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    this.closed = true;
    this.wake?.();
    await this.loop;
    this.d.sink.close();
    this.spool.close();
  }

  private async catchUp(toSeq: number): Promise<void> {
    for (const e of await this.d.readAfter(this.spool.lastSeq)) {
      if (e.seq > toSeq) break;
      this.put(e);
    }
  }

  private put(entry: AuditEntry): void {
    const wasOverflowing = this.spool.overflow.dropped > 0;
    if (!this.spool.append(entry.seq, JSON.stringify(entry))) {
      this.droppedTotal++;
      if (!wasOverflowing) {
        this.d.log.error({ sink: this.d.name, spool_max_bytes: this.d.spoolMaxBytes }, 'audit export: spool full; new events for this sink are dropped');
        void this.d.audit({ type: 'audit_export.overflow', sink: this.d.name, spool_max_bytes: this.d.spoolMaxBytes, first_dropped_seq: entry.seq }).catch(() => undefined);
      }
      return;
    }
    this.wake?.();
  }

  private async run(): Promise<void> {
    let delay = this.d.retryMinMs ?? 500;
    while (!this.closed) {
      const { lines, end } = this.spool.peek(this.d.batchMax);
      if (lines.length === 0) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      try {
        await this.d.sink.send(lines.map((l) => JSON.parse(l) as AuditEntry));
      } catch (err) {
        if (this.up) this.d.log.warn({ err, sink: this.d.name }, 'audit export: sink down; spooling events');
        this.up = false;
        await new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          this.wake = () => { if (this.closed) { clearTimeout(t); r(); } };
        });
        this.wake = undefined;
        delay = Math.min(delay * 2, this.d.retryMaxMs ?? 10_000);
        continue;
      }
      this.spool.commit(end, lines.length);
      this.delivered += lines.length;
      delay = this.d.retryMinMs ?? 500;
      if (!this.up) {
        this.up = true;
        this.d.log.info({ sink: this.d.name, spooled: this.spool.pendingEvents }, 'audit export: sink back; delivering the spool');
      }
      this.maybeResume();
    }
  }

  private maybeResume(): void {
    const o = this.spool.overflow;
    if (!o.dropped || this.spool.pendingBytes > this.d.spoolMaxBytes / 2) return;
    this.spool.clearOverflow();
    this.d.log.info({ sink: this.d.name, dropped: o.dropped }, 'audit export: spool has room again');
    void this.d.audit({ type: 'audit_export.resumed', sink: this.d.name, dropped: o.dropped, first_dropped_seq: o.firstDroppedSeq }).catch(() => undefined);
  }
}
