/**
 * Notifications reach a real local HTTP receiver: a new access request arrives as a signed
 * JSON POST (HMAC-SHA256 over the exact body, checked here with the shared secret), with a
 * Slack-compatible text and the Inbox link. A receiver that hangs does not hold the request up,
 * one that fails with 503 gets the delivery again with back-off, and one that is down is given
 * up on with a reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { waitFor } from '../helpers/sshd.js';
import { Notifier } from '../../access/notifier.js';

const SECRET = `hook-secret-${process.pid}`;
interface Got { headers: IncomingMessage['headers']; body: string }

function receiver(answer: (n: number, res: ServerResponse) => void): Promise<{ server: Server; url: string; got: Got[] }> {
  const got: Got[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      answer(got.length, res);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, got })));
}

let cp: TestControlPlane;
let hook: Awaited<ReturnType<typeof receiver>>;
let release: (() => void) | undefined;

beforeAll(async () => {
  // The first delivery hangs until the test releases it; the rest are answered at once.
  hook = await receiver((n, res) => {
    if (n === 1) release = () => res.end('ok');
    else res.end('ok');
  });
  cp = await startControlPlane({ targets: [{ name: 'web', protocol: 'ssh', host: '127.0.0.1', port: 1, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 's' } }, defaultAction: 'allow' }] });
  const secretFile = join(cp.dataDir, 'hook.secret');
  await writeFile(secretFile, SECRET + '\n', { mode: 0o600 });
  cp.config.notify = [{ url: hook.url, events: ['request.created', 'session.denied'], secretFile }];
  cp.config.publicUrl = 'https://pam.example.com';
});
afterAll(async () => {
  release?.();
  await cp?.close();
  hook?.server.close();
});

describe('notify', () => {
  it('POSTs a signed request.created to the receiver without blocking the request', async () => {
    const alice = await cp.deps.identity.verify(await cp.token('alice'));
    const req = await cp.deps.access.request(alice, { target: 'web', login: 'root', durationMs: 1800_000, reason: 'disk full' });
    // The request returned while the receiver still holds the POST open.
    const got = await waitFor(() => hook.got[0], 'the webhook POST');
    expect(release).toBeDefined();
    release!();
    const sig = String(got.headers['x-pam-signature']);
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    const want = createHmac('sha256', SECRET).update(got.body).digest();
    expect(timingSafeEqual(Buffer.from(sig.slice(7), 'hex'), want)).toBe(true);
    const n = JSON.parse(got.body);
    expect(n).toMatchObject({ event: 'request.created', link: 'https://pam.example.com/#/inbox', data: { request: req.id, target: 'web', login: 'root' } });
    expect(n.text).toContain('alice asks for root@web for 30m: "disk full"');
    expect(n.text).toContain('<https://pam.example.com/#/inbox|Open the Inbox>');
    expect(got.headers['x-pam-event']).toBe('request.created');
  });

  it('sends only the configured events', async () => {
    const before = hook.got.length;
    await expect(cp.deps.gate.authorize(await cp.deps.identity.verify(await cp.token('bob')), 'web', 'root', 'ssh')).rejects.toThrow(/no active grant/);
    const got = await waitFor(() => hook.got[before], 'the session.denied POST');
    expect(JSON.parse(got.body)).toMatchObject({ event: 'session.denied' });
    expect(JSON.parse(got.body).text).toContain('bob');
  });

  it('retries a failing receiver with back-off, and gives up on one that is down', async () => {
    const flaky = await receiver((n, res) => { res.statusCode = n < 3 ? 503 : 200; res.end(); });
    // A port that just closed: connection refused (fetch refuses "bad ports" such as 1 outright).
    const closed = await receiver(() => undefined);
    const downUrl = closed.url.replace('/hook', '/down');
    await new Promise((r) => closed.server.close(r));
    const gaveUp: string[] = [];
    const notifier = new Notifier({ targets: () => [{ url: flaky.url, events: ['hold.created'] }, { url: downUrl, events: ['hold.created'] }], baseDelayMs: 20, maxAttempts: 4, onGiveUp: (url, _e, why) => gaveUp.push(`${url} ${why}`) });
    notifier.notify({ event: 'hold.created', text: 't', time: new Date().toISOString(), data: {} });
    await waitFor(() => flaky.got.length === 3 && gaveUp.length === 1, 'three attempts and one give-up');
    expect(gaveUp[0]).toBe(`${downUrl} ECONNREFUSED after 4 attempt(s)`);
    await waitFor(() => notifier.pending === 0, 'nothing pending');
    notifier.close();
    flaky.server.close();
  });
});
