/**
 * The setup the SSH policy suites share: a real OpenSSH sshd, the control plane with a rule file,
 * the SSH broker in front, the target's root key in the vault, and grants for one user.
 */
import { startControlPlane, type TestControlPlane } from './control-plane.js';
import { startSshd, type SshdOptions, type TestSshd } from './sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { SshTarget } from '../../config/config.types.js';

export interface SshPolicyStackOptions {
  sshd?: SshdOptions;
  /** Target names (each the same sshd, login root) with their default action. */
  targets: Record<string, SshTarget['defaultAction']>;
  /** The rule file (it may name the sshd's port). */
  rules: string | ((sshd: TestSshd) => string);
  broker?: Parameters<typeof startSshBroker>[2];
  /** Granted root on every target. */
  user: string;
}

export interface SshPolicyStack {
  sshd: TestSshd;
  cp: TestControlPlane;
  broker: Listener;
  close(): Promise<void>;
}

export async function startSshPolicyStack(opts: SshPolicyStackOptions): Promise<SshPolicyStack> {
  const sshd = await startSshd(opts.sshd);
  const targets: SshTarget[] = Object.entries(opts.targets).map(([name, defaultAction]) => ({
    name, protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction,
  }));
  const cp = await startControlPlane({ targets, roles: typeof opts.rules === 'function' ? opts.rules(sshd) : opts.rules });
  await cp.setSecret('web-root', sshd.userKey);
  const broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 }, opts.broker);
  for (const name of Object.keys(opts.targets)) await cp.grant(opts.user, name, 'root');
  return {
    sshd, cp, broker,
    async close() {
      await broker.close();
      await cp.close();
      await sshd.close();
    },
  };
}
