import type { Log } from '../config/log.types.js';
import type { RunningProxy } from './running-proxy.types.js';
import { HTTP_RELOAD_KEYS, reloadConfig } from './reload.js';
import { auditEvent } from '../recorder/audit-events.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(done: () => boolean | Promise<boolean>, ms: number, abort?: { aborted: boolean }): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await done()) return true;
    if (abort?.aborted) return false;
    await sleep(100);
  }
  return done();
}

/** Longest wait for ended sessions to seal their recordings before the process exits anyway. */
const SEAL_WAIT_MS = 15_000;

/**
 * Graceful stop: readiness goes 503 (a load balancer drains the node), the SSH and Postgres
 * listeners stop taking connections (the HTTP API stays, so held commands can still be
 * approved), live sessions get up to `shutdown_grace` to finish, then are ended with
 * "proxy shutting down"; the process exits only once every recording they wrote is sealed
 * (catalog status no longer `live`). A second signal skips the rest of the grace.
 */
export async function gracefulStop(proxy: RunningProxy, log: Log, signal: string, hurry: { aborted: boolean }): Promise<void> {
  const { cp } = proxy;
  const graceMs = cp.config.shutdownGraceMs ?? 30_000;
  proxy.readiness.setListening(false);
  for (const l of proxy.listeners) l.stopAccepting?.();
  const seen = new Map(cp.sessions.list().map((s) => [s.id, s.recordingId]));
  const track = (s: { id: string; recordingId: string }) => seen.set(s.id, s.recordingId);
  cp.sessions.events.on('start', track);
  log.info({ signal, live_sessions: seen.size, grace_ms: graceMs }, 'pam: stopping; no new sessions');
  cp.sessions.notifyAll(`the proxy is shutting down: this session will be ended in ${Math.ceil(graceMs / 1000)} s; save your work and reconnect`);
  await cp.audit.append(auditEvent('proxy.stopping', { signal, live_sessions: seen.size, grace_ms: graceMs })).catch(() => undefined);
  const left = await until(() => cp.sessions.list().length === 0, graceMs, hurry) ? 0 : cp.sessions.list().length;
  if (left) {
    log.info({ live_sessions: left }, 'pam: grace over; ending live sessions');
    for (const s of cp.sessions.list()) cp.sessions.kill(s.id, 'proxy shutting down');
  }
  const sealed = async () => {
    if (cp.sessions.list().length) return false;
    for (const id of seen.values()) if ((await cp.recordings.get(id).catch(() => undefined))?.status === 'live') return false;
    return true;
  };
  const allSealed = await until(sealed, SEAL_WAIT_MS);
  cp.sessions.events.off('start', track);
  if (!allSealed) log.error({ sessions: seen.size }, 'pam: some recordings were still open at exit; they will be marked interrupted at the next start');
  await cp.audit.append(auditEvent('proxy.stopped', { signal, sessions_ended: left, recordings_sealed: allSealed })).catch(() => undefined);
  await proxy.close();
  log.info('pam: stopped');
}

/** SIGTERM/SIGINT: graceful stop then exit; SIGHUP: reload `configFile`. */
export function installSignals(proxy: RunningProxy, opts: { configFile: string; log: Log & { level?: string } }): void {
  const { log } = opts;
  const hurry = { aborted: false };
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      if (!hurry.aborted) log.info({ signal }, 'pam: second signal; ending sessions now');
      hurry.aborted = true;
      return;
    }
    stopping = true;
    gracefulStop(proxy, log, signal, hurry).then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'pam: stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    if (stopping) return;
    const r = reloadConfig(proxy.cp.config, opts.configFile);
    if (!r.ok) {
      log.error({ file: opts.configFile, error: r.error }, 'pam: reload refused; the running configuration stays in force');
      void proxy.cp.audit.append(auditEvent('config.refused', { file: opts.configFile, error: r.error })).catch(() => undefined);
      return;
    }
    if (r.changed.includes('log.level') && proxy.cp.config.log && 'level' in log) log.level = proxy.cp.config.log.level;
    if (r.changed.some((k) => HTTP_RELOAD_KEYS.includes(k))) proxy.http.reload();
    if (r.needsRestart.length) log.warn({ keys: r.needsRestart }, 'pam: reload: these keys take effect only after a restart');
    log.info({ changed: r.changed, targets: proxy.cp.config.targets.length }, 'pam: configuration reloaded');
    void proxy.cp.audit.append(auditEvent('config.reloaded', {
      file: opts.configFile, changed: r.changed, needs_restart: r.needsRestart,
      targets: proxy.cp.config.targets.map((t) => t.name),
    })).catch(() => undefined);
  });
}
