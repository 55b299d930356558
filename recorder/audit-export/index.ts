import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { AuditSinkConfig } from '../../config/config.types.js';
import type { Log } from '../../config/log.types.js';
import type { AuditEntry, AuditEvent } from '../audit.types.js';
import { AuditForwarder, type ForwarderStats } from './forwarder.js';
import { syslogSink, webhookSink, type AuditSink } from './sinks.js';

export type { ForwarderStats } from './forwarder.js';

export interface AuditExport {
  stats(): ForwarderStats[];
  /** Gives the sinks up to `ms` to take what is spooled, then stops (the rest waits on disk). */
  close(ms?: number): Promise<void>;
}

export interface AuditExportDeps {
  /** `data_dir/audit-export`: one spool and cursor per sink. */
  spoolDir: string;
  /** The audit log file, watched for entries other processes append. */
  auditPath: string;
  onAppend: (fn: (e: AuditEntry) => void) => () => void;
  read: () => Promise<AuditEntry[]>;
  append: (e: AuditEvent) => Promise<unknown>;
  log: Log;
  /** Tests shorten the retry backoff. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

const POLL_MS = 2000;

function sinkFor(cfg: AuditSinkConfig): AuditSink {
  const ca = cfg.caFile ? readFileSync(cfg.caFile) : undefined;
  if (cfg.kind === 'syslog') return syslogSink({ host: cfg.host, port: cfg.port, tls: cfg.tls, ca, origin: { hostname: hostname(), appName: 'pam-proxy', procId: String(process.pid) } });
  const key = readFileSync(cfg.secretFile!);
  if (key.length === 0) throw new Error(`audit_export ${cfg.name}: ${cfg.secretFile} is empty`);
  return webhookSink({ url: cfg.url, key, ca });
}

/**
 * SIEM export (`audit_export:`): every audit entry this node writes goes, in order, to each sink
 * through its own disk spool (forwarder.ts). Files a sink needs (CA, HMAC key) are read here, so
 * a missing one stops `pam serve` at start with the sink named.
 */
export async function startAuditExport(sinks: AuditSinkConfig[], deps: AuditExportDeps): Promise<AuditExport> {
  if (sinks.length === 0) return { stats: () => [], close: async () => undefined };
  const forwarders = sinks.map((cfg) => {
    let sink: AuditSink;
    try {
      sink = sinkFor(cfg);
    } catch (err) {
      throw new Error(`audit_export ${cfg.name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    return new AuditForwarder({
      name: cfg.name, sink, spoolDir: deps.spoolDir, spoolMaxBytes: cfg.spoolMaxBytes, batchMax: cfg.batchMax,
      readAfter: async (seq) => (await deps.read()).filter((e) => e.seq > seq),
      audit: deps.append, log: deps.log, retryMinMs: deps.retryMinMs, retryMaxMs: deps.retryMaxMs,
    });
  });
  const current = (await deps.read()).at(-1)?.seq ?? 0;
  const off = deps.onAppend((e) => { for (const f of forwarders) f.take(e); });
  for (const f of forwarders) f.start(current);
  // `pam secret` appends from its own process; without a later entry of ours nothing would
  // reveal it, so the file's size is checked now and then.
  let size = (await stat(deps.auditPath).catch(() => undefined))?.size;
  const watch = setInterval(() => {
    void stat(deps.auditPath).then((st) => {
      if (st.size === size) return;
      size = st.size;
      for (const f of forwarders) f.poll();
    }, () => undefined);
  }, POLL_MS);
  watch.unref();
  return {
    stats: () => forwarders.map((f) => f.stats()),
    async close(ms = 0) {
      clearInterval(watch);
      off();
      await Promise.all(forwarders.map((f) => f.close(ms)));
    },
  };
}
