import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from './control-plane.js';
import { startSshd, type TestSshd } from './sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';

/**
 * A real sshd behind the SSH broker with two allow-by-default targets on it: `web`, and `files`
 * whose transfers are kept as content (`recording: { transfers: content }`); alice holds a grant
 * to both as root. The transfer and raw-recording suites share it.
 */
export interface TransferStack { sshd: TestSshd; cp: TestControlPlane; broker: Listener; dir: string; token: string; close(): Promise<void> }

export async function startTransferStack(tmpPrefix: string): Promise<TransferStack> {
  const sshd = await startSshd();
  const target = { protocol: 'ssh' as const, host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' as const };
  const cp = await startControlPlane({ targets: [{ name: 'web', ...target }, { name: 'files', ...target, recordTransfers: 'content' }] });
  await cp.setSecret('web-root', sshd.userKey);
  const broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'web', 'root');
  await cp.grant('alice', 'files', 'root');
  const token = await cp.token('alice');
  const dir = await mkdtemp(join(tmpdir(), tmpPrefix));
  return {
    sshd, cp, broker, dir, token,
    async close() {
      await broker.close();
      await cp.close();
      await sshd.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
