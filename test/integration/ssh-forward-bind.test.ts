/**
 * `ssh -R` bind addresses are normalised before the rules see them, as the target's sshd reads
 * them (proxy/ssh/forward-destination.ts `bindForms`). With `GatewayPorts clientspecified` sshd
 * hands the bind address to getaddrinfo, so `0`, `0x0`, `0.0.0.0.` listen on every interface,
 * like `0.0.0.0`, `*` and `[::]`. A deny for `0.0.0.0:*` must stop all of them. Checked at the
 * target (the sshd runs on this machine): nothing listens on the port while the session's
 * allowed loopback forward works, and the refusal is audited with the normalised form.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startSshd, runOpenSsh, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';

const rules = `
command_rules:
  - name: no-wildcard-listeners
    protocol: ssh
    targets: [fwdr]
    match: { channel: port-forward, destination: '0.0.0.0:*' }
    action: deny
    message: listeners on every interface are not allowed
  - name: other-listeners
    protocol: ssh
    targets: [fwdr]
    match: { channel: port-forward, destination: '*:*' }
    action: allow
`;

const tmp = mkdtempSync(join(tmpdir(), 'pam-fwd-bind-'));
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;
let greeter: Server;
let local = 0;

beforeAll(async () => {
  sshd = await startSshd({ config: ['AllowTcpForwarding yes', 'GatewayPorts clientspecified'] });
  cp = await startControlPlane({
    targets: [{ name: 'fwdr', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'root-key' } }, defaultAction: 'allow' }],
    roles: rules,
  });
  await cp.setSecret('root-key', sshd.userKey);
  broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'fwdr', 'root');
  greeter = createServer((sock) => sock.end('hello-from-client-side\n'));
  await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r));
  local = (greeter.address() as { port: number }).port;
  writeFileSync(join(tmp, 'id'), sshd.userKey, { mode: 0o600 });
});

afterAll(async () => {
  greeter?.close();
  await broker?.close();
  await cp?.close();
  await sshd?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * On the target: the greeting through the allowed forward on `ok` (retried until the target has
 * bound it; the forwards were requested before it, in order), then every listener on `port`.
 */
const probe = (port: number, ok: number) =>
  `for i in $(seq 100); do exec 3<>/dev/tcp/127.0.0.1/${ok} 2>/dev/null && break; sleep 0.1; done; head -n1 <&3; ` +
  `echo "listeners=[$(ss -ltnH "sport = :${port}" | awk '{print $4}' | tr '\\n' ' ')]"`;

describe('ssh -R bind addresses are matched as the target reads them', () => {
  it('the attack is real: directly at the target sshd, -R 0x0:PORT listens on every interface', async () => {
    const port = await freePort();
    const out = await new Promise<string>((resolve) => {
      execFile('ssh', [
        '-i', join(tmp, 'id'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
        '-o', 'ExitOnForwardFailure=yes', '-p', String(sshd.port), '-R', `0x0:${port}:127.0.0.1:${local}`, 'root@127.0.0.1',
        `sleep 0.5; ss -ltnH "sport = :${port}"`,
      ], (_err, stdout) => resolve(stdout));
    });
    expect(out).toContain(`0.0.0.0:${port}`);
  });

  for (const form of ['0', '0x0', '0.0.0.0.', '0.0.0.0', '*', '[::]']) {
    it(`-R ${form}:PORT is refused by the deny for 0.0.0.0:*, nothing listens; the allowed loopback forward works`, async () => {
      const denied = await freePort();
      const allowed = await freePort();
      const r = await runOpenSsh('ssh', await cp.token('alice'), [
        '-p', String(broker.port), '-l', 'root@fwdr',
        '-R', `${form}:${denied}:127.0.0.1:${local}`, '-R', `127.0.0.1:${allowed}:127.0.0.1:${local}`,
        '127.0.0.1', probe(denied, allowed),
      ]);
      expect(r.stderr).toMatch(new RegExp(`remote port forwarding failed for listen port ${denied}`));
      expect(r.stdout).toContain('hello-from-client-side');
      expect(r.stdout).toContain('listeners=[]');
      const audit = await cp.audit();
      const refusal = audit.find((e) => e.type === 'ssh.channel.refused' && e.request === 'tcpip-forward' && String(e.destination).endsWith(`:${denied}`));
      expect(refusal).toMatchObject({ rule: 'no-wildcard-listeners' });
      expect(audit.some((e) => e.type === 'policy.deny' && e.rule === 'no-wildcard-listeners' && String(e.destination).endsWith(`:${denied}`))).toBe(true);
    });
  }

  it('a hex loopback is asked of the target as 127.0.0.1 and works (audited as asked, with the upstream form)', async () => {
    const port = await freePort();
    const r = await runOpenSsh('ssh', await cp.token('alice'), [
      '-p', String(broker.port), '-l', 'root@fwdr', '-o', 'ExitOnForwardFailure=yes',
      '-R', `0x7f000001:${port}:127.0.0.1:${local}`, '127.0.0.1', probe(port, port),
    ]);
    expect(r.stdout).toContain(`listeners=[127.0.0.1:${port} ]`);
    expect(r.stdout).toContain('hello-from-client-side');
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.forward' && e.destination === `0x7f000001:${port}` && e.upstream === `127.0.0.1:${port}`)).toBe(true);
  });
});
