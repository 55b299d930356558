import { startControlPlane } from '../test/helpers/control-plane.js';
import { startSshd } from '../test/helpers/sshd.js';
import { startSshBroker } from '../proxy/ssh/server.js';

/**
 * What every SSH bench starts from: a real sshd, a control plane with one target `bench`
 * (login root, key in the vault), the broker on a free loopback port, and a granted token.
 */
export async function startSshBench() {
  const sshd = await startSshd();
  const cp = await startControlPlane({
    targets: [{ name: 'bench', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'bench-root' } }, defaultAction: 'allow' }],
  });
  await cp.setSecret('bench-root', sshd.userKey);
  const broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('bencher', 'bench', 'root');
  const token = await cp.token('bencher');
  return { sshd, cp, broker, token };
}
