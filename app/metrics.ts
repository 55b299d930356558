import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditEntry } from '../recorder/audit.types.js';
import type { SessionRegistry } from '../access/live-sessions.js';
import { recordingWriteBacklog } from '../recorder/recording-file.js';
import { upstreamPoolTotals } from '../proxy/postgres/upstream-pool.js';
import { actionLabel, outcomeLabel, protocolLabel, refusalLabel, targetLabel, tokenReasonLabel } from './metrics-labels.js';

/** What the audit export reports per sink (recorder/audit-export). */
export interface SinkStats { name: string; up: boolean; spoolBytes: number; spooledEvents: number; delivered: number; dropped: number }

export interface MetricsDeps {
  sessions: SessionRegistry;
  /** Subscribes to written audit entries (FileAuditLog.onAppend). */
  onAudit: (fn: (e: AuditEntry) => void) => () => void;
  /** Names of the configured targets (current, so a reload is seen). */
  targets: () => readonly string[];
  /** Review holds waiting for an approver. */
  holdsWaiting: () => Promise<number>;
  /** Last store check (undefined before the first). */
  storeUp: () => boolean | undefined;
  sinks?: () => SinkStats[];
}

export interface Metrics {
  registry: Registry;
  /** Counts relayed bytes; brokers call it through BrokerDeps.meter. */
  bytes(protocol: 'ssh' | 'postgres', direction: 'client_to_target' | 'target_to_client', n: number): void;
  /** Counts one SQL statement with the action the policy took (allow when no policy spoke). */
  statement(action: string): void;
  close(): void;
}

/**
 * The Prometheus registry of `pam serve` (served at listen.metrics `/metrics`). Session and
 * decision counters are derived from the live-session registry's events and from every audit
 * entry as it is written, so the brokers need no metrics code; labels come only from closed sets
 * (metrics-labels.ts), never from user input. Process memory, event-loop lag and GC come from
 * prom-client's default collectors.
 */
export function createMetrics(deps: MetricsDeps): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  const r = [registry];
  const target = (v: unknown) => targetLabel(v, deps.targets);

  new Gauge({
    name: 'pam_sessions_live', help: 'Sessions open now, by protocol and target', labelNames: ['protocol', 'target'], registers: r,
    collect() {
      this.reset();
      for (const s of deps.sessions.list()) this.inc({ protocol: protocolLabel(s.protocol), target: target(s.target) });
    },
  });
  const started = new Counter({ name: 'pam_sessions_started_total', help: 'Sessions opened to a target', labelNames: ['protocol', 'target'], registers: r });
  const ended = new Counter({ name: 'pam_sessions_ended_total', help: 'Sessions ended, by outcome (normal, revoked, expired, killed, shutdown, recording_failed, error, other)', labelNames: ['protocol', 'outcome'], registers: r });
  const refused = new Counter({ name: 'pam_session_refusals_total', help: 'Sessions refused or failed before the relay, by reason', labelNames: ['protocol', 'reason'], registers: r });
  const tokenFailures = new Counter({ name: 'pam_token_verification_failures_total', help: 'IAM tokens rejected, by door and reason', labelNames: ['via', 'reason'], registers: r });
  const verdicts = new Counter({ name: 'pam_policy_verdicts_total', help: 'Audited policy verdicts (deny, review, alert), by protocol, kind and action', labelNames: ['protocol', 'kind', 'action'], registers: r });
  // The relay counts every chunk and every statement: plain numbers, handed to prom-client only
  // when /metrics is scraped (a prom-client inc hashes its labels on every call, even through a
  // bound child: about 3% of the Postgres relay's main-thread time under pgbench).
  const byteTotals = [
    { protocol: 'ssh', direction: 'client_to_target', n: 0 }, { protocol: 'ssh', direction: 'target_to_client', n: 0 },
    { protocol: 'postgres', direction: 'client_to_target', n: 0 }, { protocol: 'postgres', direction: 'target_to_client', n: 0 },
  ];
  const statementTotals = new Map<string, number>();
  new Counter({
    name: 'pam_sql_statements_total', help: 'SQL statements relayed or refused, by the action taken', labelNames: ['action'], registers: r,
    collect() {
      this.reset();
      for (const [action, n] of statementTotals) this.inc({ action }, n);
    },
  });
  new Counter({
    name: 'pam_relayed_bytes_total', help: 'Bytes relayed, by protocol and direction', labelNames: ['protocol', 'direction'], registers: r,
    collect() {
      this.reset();
      for (const t of byteTotals) if (t.n > 0) this.inc({ protocol: t.protocol, direction: t.direction }, t.n);
    },
  });
  const auditEntries = new Counter({ name: 'pam_audit_entries_total', help: 'Audit entries written by this process, by type', labelNames: ['type'], registers: r });
  new Gauge({
    name: 'pam_review_holds_waiting', help: 'Commands and statements held by review rules, waiting for an approver', registers: r,
    async collect() {
      this.set(await deps.holdsWaiting().catch(() => Number.NaN));
    },
  });
  new Gauge({
    name: 'pam_postgres_upstream_pool_idle', help: 'Idle pre-authenticated target connections in the upstream pool (postgres.upstream_pool)', registers: r,
    collect() {
      this.set(upstreamPoolTotals().idle);
    },
  });
  new Gauge({
    name: 'pam_postgres_upstream_connections', help: 'Target connections since start: logins made, sessions served by a pooled connection, connections closed instead of pooled', labelNames: ['kind'], registers: r,
    collect() {
      const t = upstreamPoolTotals();
      this.set({ kind: 'login' }, t.logins);
      this.set({ kind: 'reused' }, t.reused);
      this.set({ kind: 'closed' }, t.discarded);
    },
  });
  new Gauge({
    name: 'pam_recording_write_backlog_bytes', help: 'Recording bytes accepted but not yet written to their files, over all open recordings', registers: r,
    collect() {
      this.set(recordingWriteBacklog().bytes);
    },
  });
  new Gauge({
    name: 'pam_recording_write_lag_seconds', help: 'How long the oldest recording byte not yet written has waited (0 when nothing waits)', registers: r,
    collect() {
      const b = recordingWriteBacklog();
      this.set(b.bytes > 0 ? b.lagMs / 1000 : 0);
    },
  });
  new Gauge({
    name: 'pam_recordings_open', help: 'Recording files open for writing', registers: r,
    collect() {
      this.set(recordingWriteBacklog().files);
    },
  });
  new Gauge({
    name: 'pam_store_up', help: '1 if the last state-store check answered, 0 if not', registers: r,
    collect() {
      const up = deps.storeUp();
      this.set(up === undefined ? Number.NaN : up ? 1 : 0);
    },
  });
  const sinkGauge = (name: string, help: string, pick: (s: SinkStats) => number) => new Gauge({
    name, help, labelNames: ['sink'], registers: r,
    collect() {
      this.reset();
      for (const s of deps.sinks?.() ?? []) this.set({ sink: s.name }, pick(s));
    },
  });
  sinkGauge('pam_audit_export_up', '1 while the SIEM sink takes events, 0 while it is down', (s) => (s.up ? 1 : 0));
  sinkGauge('pam_audit_export_spool_bytes', 'Bytes of audit events spooled for the sink, not yet delivered', (s) => s.spoolBytes);
  sinkGauge('pam_audit_export_spool_events', 'Audit events spooled for the sink, not yet delivered', (s) => s.spooledEvents);
  sinkGauge('pam_audit_export_delivered_total', 'Audit events delivered to the sink since start', (s) => s.delivered);
  sinkGauge('pam_audit_export_dropped_total', 'Audit events the full spool could not keep (each overflow is audited)', (s) => s.dropped);

  const offStart = (info: { protocol: string; target: string }) => started.inc({ protocol: protocolLabel(info.protocol), target: target(info.target) });
  deps.sessions.events.on('start', offStart);

  const offAudit = deps.onAudit((e) => {
    if (/^[a-z][a-z_.]{0,47}$/.test(e.type)) auditEntries.inc({ type: e.type });
    switch (e.type) {
      case 'session.end':
        ended.inc({ protocol: protocolLabel(e.protocol), outcome: outcomeLabel(e.reason) });
        break;
      case 'session.refused':
      case 'session.failed': {
        const reason = refusalLabel(e.why);
        refused.inc({ protocol: protocolLabel(e.protocol), reason });
        if (reason === 'token') tokenFailures.inc({ via: protocolLabel(e.protocol), reason: tokenReasonLabel(e.why) });
        break;
      }
      case 'token.rejected':
        tokenFailures.inc({ via: e.via === 'http' ? 'http' : 'other', reason: tokenReasonLabel(e.reason) });
        break;
      default:
        if (/^policy\.(deny|review|alert)$/.test(e.type)) {
          const action = e.type === 'policy.deny' && e.action === 'review' ? 'review_denied' : actionLabel(e.type.slice(7));
          const kind = e.kind === 'command' || e.kind === 'channel' || e.kind === 'sql' ? e.kind : e.protocol === 'postgres' ? 'sql' : 'other';
          verdicts.inc({ protocol: protocolLabel(e.protocol), kind, action });
        }
    }
  });

  return {
    registry,
    bytes(protocol, direction, n) {
      byteTotals[(protocol === 'ssh' ? 0 : 2) + (direction === 'client_to_target' ? 0 : 1)]!.n += n;
    },
    statement(action) {
      const label = actionLabel(action);
      statementTotals.set(label, (statementTotals.get(label) ?? 0) + 1);
    },
    close() {
      deps.sessions.events.off('start', offStart);
      offAudit();
    },
  };
}
