import { loadConfig } from '../config/config.js';
import { openControlPlane, type ControlPlane } from './control-plane.js';
import type { Config } from '../config/config.types.js';
import type { Listener } from '../proxy/broker.types.js';
import { startHttpServer } from '../replay-ui/server/http.js';
import { replayUi } from '../replay-ui/server/ui-index.js';
import { startSshBroker } from '../proxy/ssh/server.js';
import { startPostgresBroker } from '../proxy/postgres/server.js';

export interface RunningProxy {
  cp: ControlPlane;
  http: Listener;
  ssh?: Listener;
  postgres?: Listener;
  close(): Promise<void>;
}

/** Opens the control plane and every configured listener. */
export async function startProxy(config: Config): Promise<RunningProxy> {
  const cp = await openControlPlane(config);
  const listeners: Listener[] = [];
  try {
    const ui = replayUi(cp);
    const http = await startHttpServer(cp, config.listen.http!, ui);
    listeners.push({ port: http.port, close: async () => { ui.close(); await http.close(); } });
    const ssh = config.listen.ssh ? await startSshBroker(cp, config.listen.ssh, { reviewTimeoutMs: config.reviewTimeoutMs }) : undefined;
    if (ssh) listeners.push(ssh);
    const postgres = config.listen.postgres ? await startPostgresBroker(cp, config.listen.postgres, { reviewTimeoutMs: config.reviewTimeoutMs }) : undefined;
    if (postgres) listeners.push(postgres);
    await cp.audit.append({ type: 'config.loaded', file: config.file, targets: config.targets.map((t) => t.name), roles: cp.roles().map((r) => r.name) });
    return {
      cp, http, ssh, postgres,
      async close() {
        for (const l of listeners.reverse()) await l.close().catch(() => undefined);
        await cp.close();
      },
    };
  } catch (err) {
    for (const l of listeners) await l.close().catch(() => undefined);
    await cp.close();
    throw err;
  }
}

/** `pam serve`: runs until SIGINT/SIGTERM. */
export async function serve(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  const proxy = await startProxy(config);
  const addr = (name: string, l?: Listener, host?: string) => (l ? `${name} ${host}:${l.port}` : undefined);
  console.log(
    `pam: serving ${[addr('ssh', proxy.ssh, config.listen.ssh?.host), addr('postgres', proxy.postgres, config.listen.postgres?.host), addr('http', proxy.http, config.listen.http?.host)].filter(Boolean).join(', ')}` +
      (config.identity.dev ? ' (dev issuer: get a token with `npx pam dev token USER --groups …`)' : ''),
  );
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`pam: ${sig}, closing`);
    await proxy.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
