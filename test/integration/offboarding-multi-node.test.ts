/**
 * Offboarding across nodes: two proxy nodes share one Redis store (db 13, cleared before and
 * after). A person's live SSH session runs through node B's broker to a real sshd; node A
 * offboards them; the session on B ends and B refuses the still-valid token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import ssh2 from 'ssh2';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { openControlPlane, type ControlPlane } from '../../app/control-plane.js';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';

const URL = 'redis://127.0.0.1:6379/13';
let raw: Redis;
let sshd: TestSshd;
let a: TestControlPlane;
let b: ControlPlane;
let brokerB: Listener;

beforeAll(async () => {
  raw = new Redis(URL);
  await raw.flushdb();
  sshd = await startSshd();
  a = await startControlPlane({
    targets: [{ name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' }],
    overrides: { store: URL },
  });
  await a.setSecret('web-root', sshd.userKey);
  b = await openControlPlane(a.config);
  brokerB = await startSshBroker(b, { host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await brokerB?.close();
  await b?.close();
  await a?.close();
  await sshd?.close();
  await raw?.flushdb();
  raw?.disconnect();
});

describe('offboarding on two nodes', () => {
  it('ends the session on the other node and refuses the token there', async () => {
    await a.grant('alice', 'web', 'root');
    const token = await a.token('alice');
    const client = new ssh2.Client();
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({ host: '127.0.0.1', port: brokerB.port, username: 'root@web', password: token });
    });
    let out = '';
    client.exec('echo up; sleep 120', (_err, ch) => ch.on('data', (d: Buffer) => (out += d.toString())));
    await waitFor(() => out.includes('up'), 'the command on node B');
    expect(b.sessions.list()).toHaveLength(1);
    expect(a.deps.sessions.list()).toHaveLength(0);

    const r = await a.deps.offboarding.offboard(await a.deps.identity.verify(await a.token('sam', ['approvers'])), 'alice', 'contract ended');
    expect(r.sessionsEnded).toEqual([]); // none on node A itself
    await closed;
    await waitFor(() => b.sessions.list().length === 0, 'node B to drop the session');
    await expect(b.identity.verify(token)).rejects.toThrow(/offboarded/);
  });
});
