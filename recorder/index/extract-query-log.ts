import type { CommandOp, CommandVerdict, ExtractSummary, IndexOp } from './index.types.js';
import { sqlName } from './command-name.js';

const MAX_TEXT = 20_000;
const VERDICTS = new Set<CommandVerdict>(['allow', 'alert', 'review', 'deny']);

/**
 * Reads a Postgres recording (recorder/query-log-writer.ts: JSON lines) and emits one command
 * op per statement: its SQL, verdict and rule, and the outcome (command tag and rows, or the
 * SQLSTATE and message). Times count from the first line, as the replay UI counts them.
 */
export class QueryLogExtractor {
  private startMs: number | undefined;
  private key = 0;
  /** The last `t` text parsed and its time: a busy session writes many lines in one millisecond. */
  private lastT = '';
  private lastMs = NaN;
  readonly summary: ExtractSummary = { denials: 0, commands: 0 };

  private timeOf(t: unknown): number {
    if (typeof t !== 'string') return Date.parse(String(t));
    if (t !== this.lastT) {
      this.lastT = t;
      this.lastMs = Date.parse(t);
    }
    return this.lastMs;
  }

  line(line: string, out: IndexOp[]): void {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // a torn last line of a live file
    }
    if (!e || typeof e !== 'object') return;
    const ms = this.timeOf(e.t);
    if (!Number.isFinite(ms)) return;
    this.startMs ??= ms;
    if ((e.type === 'notice' || e.type === 'error') && e.from === 'proxy' && typeof e.message === 'string') {
      // What the proxy told the client: searchable as a marker, as in an SSH recording.
      this.key++;
      out.push({ op: 'doc', key: this.key, kind: 'marker', t: (ms - this.startMs) / 1000, ts: ms, text: `[pam] ${String(e.severity ?? '')}: ${e.message}`.slice(0, MAX_TEXT) });
      return;
    }
    if (e.type !== 'statement' && e.type !== 'alert') return;
    this.key++;
    if (typeof e.sql !== 'string') return;
    const v = (e.verdict ?? {}) as { action?: string; rule?: string; message?: string; decision?: string; hold?: string };
    const verdict: CommandVerdict = VERDICTS.has(v.action as CommandVerdict) ? (v.action as CommandVerdict) : 'allow';
    if (verdict === 'deny') this.summary.denials++;
    this.summary.commands++;
    // Built field by field, not with spreads: this runs once per statement on the index worker.
    const op: CommandOp = {
      op: 'command', key: this.key, t: (ms - this.startMs) / 1000, ts: ms, via: 'sql',
      text: e.sql.slice(0, MAX_TEXT), name: sqlName(e.sql), verdict,
    };
    // A recorded verdict without a rule: the target's default_action decided (no verdict: not judged).
    if (typeof v.rule === 'string') op.rule = v.rule;
    else if (e.verdict) op.rule = 'default_action';
    const outcome = outcomeOf(e, v);
    if (outcome) op.outcome = outcome;
    out.push(op);
  }

  /** Nothing is held back: every statement line is final when written. */
  pending(_out: IndexOp[]): void {}

  end(_out: IndexOp[]): void {}
}

function outcomeOf(e: Record<string, unknown>, v: { decision?: string; hold?: string }): string | undefined {
  const err = e.error as { sqlstate?: string; message?: string } | undefined;
  // The parts joined by '; ' (none is empty), as a string: the usual outcome is the tag alone.
  let out = e.type === 'alert' ? 'alert' : '';
  let part = '';
  if (err) part = `ERROR ${err.sqlstate ?? ''} ${err.message ?? ''}`.replace(/\s+/g, ' ').trim();
  else {
    const tag = typeof e.tag === 'string' ? e.tag : Array.isArray(e.tags) ? e.tags.join(', ') : undefined;
    if (tag) part = tag;
    else if (typeof e.rows === 'number') part = `${e.rows} rows`;
  }
  if (part) out = out ? `${out}; ${part}` : part;
  if (v.decision) {
    const review = `review ${v.decision}${v.hold ? ` (${v.hold})` : ''}`;
    out = out ? `${out}; ${review}` : review;
  }
  return out ? out.slice(0, 2000) : undefined;
}
