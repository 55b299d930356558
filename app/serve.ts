import { join } from 'node:path';
import { loadConfig } from '../config/config.js';
import { openControlPlane } from './control-plane.js';
import type { Config } from '../config/config.types.js';
import type { Listener } from '../proxy/broker.types.js';
import { startHttpServer } from '../replay-ui/server/http.js';
import { replayUi } from '../replay-ui/server/ui-index.js';
import { startSshBroker } from '../proxy/ssh/server.js';
import { startPostgresBroker } from '../proxy/postgres/server.js';
import { captureConsole, createLog, type Log } from './log.js';
import { createMetrics } from './metrics.js';
import { createReadiness } from './health.js';
import type { RunningProxy } from './running-proxy.types.js';
import { startOpsServer } from './ops-http.js';
import { installSignals } from './signals.js';
import { LiveIndex } from '../recorder/index/live-index.js';
import { startAuditExport, type AuditExport } from '../recorder/audit-export/index.js';
import { auditEvent } from '../recorder/audit-events.js';

export type { RunningProxy } from './running-proxy.types.js';

/** How often readiness is checked in the background, so metrics and logs see an outage unasked. */
const READINESS_EVERY_MS = 5000;
/** How long a stopping process lets the SIEM sinks take what is spooled. */
const EXPORT_FLUSH_MS = 5000;

/** Opens the control plane and every configured listener. */
export async function startProxy(config: Config, opts: { log?: Log } = {}): Promise<RunningProxy> {
  const log = opts.log ?? createLog(config.log);
  const cp = await openControlPlane(config, { log });
  const listeners: Listener[] = [];
  let index: LiveIndex | undefined;
  let ops: Listener | undefined;
  let timer: NodeJS.Timeout | undefined;
  let exporter: AuditExport | undefined;
  const readiness = createReadiness({
    store: cp.store, recordingsDir: join(config.dataDir, 'recordings'), identity: cp.identity,
    onStore: (up, err) => (up ? cp.storeState.up() : cp.storeState.down(err)),
  });
  const metrics = createMetrics({
    sessions: cp.sessions,
    onAudit: (fn) => cp.audit.onAppend(fn),
    targets: () => config.targets.map((t) => t.name),
    holdsWaiting: async () => (await cp.store.list<{ status: string; expiresAt: number }>('holds')).filter((h) => h.status === 'pending' && h.expiresAt > Date.now()).length,
    storeUp: () => readiness.storeUp,
    sinks: () => exporter?.stats() ?? [],
  });
  cp.meter = metrics;
  const closeAll = async () => {
    clearInterval(timer);
    readiness.setListening(false);
    for (const l of [...listeners].reverse()) await l.close().catch(() => undefined);
    // Sinks get a few seconds to take the last entries (proxy.stopped); the rest stays spooled.
    await exporter?.close(EXPORT_FLUSH_MS).catch(() => undefined);
    await ops?.close().catch(() => undefined);
    // After the listeners: the sessions they ended have written their last catalog entries.
    await index?.close().catch(() => undefined);
    metrics.close();
    await cp.close();
  };
  try {
    exporter = await startAuditExport(config.auditExport ?? [], {
      spoolDir: join(config.dataDir, 'audit-export'), auditPath: join(config.dataDir, 'audit.log'),
      onAppend: (fn) => cp.audit.onAppend(fn), read: () => cp.audit.read(), append: (e) => cp.audit.append(e),
      log: log.child({ component: 'audit-export' }),
    });
    if (config.listen.metrics) ops = await startOpsServer(config.listen.metrics, { registry: metrics.registry, readiness, log: log.child({ component: 'ops' }) });
    // Before the brokers: every recording they open is followed from its first line. A missing
    // or stale index is brought up to date in the background while everything serves.
    if (config.index?.enabled !== false) {
      index = await LiveIndex.start({ dataDir: config.dataDir, catalog: cp.recordings, onLog: (level, message) => log[level]({ component: 'index' }, message) });
    }
    const ui = replayUi({ ...cp, index });
    const http = await startHttpServer({ ...cp, index }, config.listen.http!, ui);
    listeners.push({ port: http.port, close: async () => { ui.close(); await http.close(); } });
    const ssh = config.listen.ssh ? await startSshBroker(cp, config.listen.ssh, { reviewTimeoutMs: config.reviewTimeoutMs }) : undefined;
    if (ssh) listeners.push(ssh);
    const postgres = config.listen.postgres ? await startPostgresBroker(cp, config.listen.postgres, { reviewTimeoutMs: config.reviewTimeoutMs }) : undefined;
    if (postgres) listeners.push(postgres);
    // Rotation on schedule (`rotation.every`) and after sessions (`after_session`).
    const stopRotation = cp.rotation.startSchedule(cp.sessions);
    listeners.push({ port: 0, close: async () => stopRotation() });
    await cp.audit.append(auditEvent('config.loaded', { file: config.file, targets: config.targets.map((t) => t.name), roles: cp.roles().map((r) => r.name) }));
    readiness.setListening(true);
    timer = setInterval(() => void readiness.check(), READINESS_EVERY_MS);
    timer.unref();
    void readiness.check();
    return { cp, http, ssh, postgres, ops, metrics, readiness, listeners, index, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** `pam serve`: runs until SIGINT/SIGTERM (graceful stop); SIGHUP reloads the config file. */
export async function serve(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  const log = createLog(config.log);
  captureConsole(log);
  const proxy = await startProxy(config, { log });
  const addr = (l?: Listener, host?: string) => (l ? `${host}:${l.port}` : undefined);
  // Before "serving": whoever waits for that line has already been told how evidence stands.
  if (proxy.cp.evidence) {
    const ev = config.evidence!;
    log.info({ key_id: proxy.cp.evidence.keyId, key_file: ev.signingKeyFile, witness: ev.witness ?? null }, `pam: evidence signed${ev.witness ? '' : '; no witness: a cut tail of the log is only caught by the checkpoints in data_dir'}`);
  } else {
    log.warn({}, 'pam: evidence is unsigned (no evidence section): whoever can write data_dir can rewrite the audit log and recordings undetected');
  }
  log.info(
    {
      ssh: addr(proxy.ssh, config.listen.ssh?.host), postgres: addr(proxy.postgres, config.listen.postgres?.host),
      http: addr(proxy.http, config.listen.http?.host), metrics: addr(proxy.ops, config.listen.metrics?.host),
      ...(config.identity.dev ? { dev_issuer: 'get a token with `npx pam dev token USER --groups …`' } : {}),
    },
    'pam: serving',
  );
  // Dev issuer only (loopback): whoever reads this terminal may use the browser's dev sign-in.
  if (proxy.cp.dev) log.info({}, `pam: dev sign-in secret: ${proxy.cp.dev.signinSecret} (single-use: the browser's dev sign-in form asks for it, and each use prints the next one)`);
  installSignals(proxy, { configFile, log });
}
