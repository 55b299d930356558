import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { waitFor } from '../helpers/sshd.js';
import { SessionLifecycle, SessionRefused, TargetRefused, type OpenRequest } from '../../proxy/session-lifecycle.js';
import type { Authorized } from '../../access/access.types.js';
import type { Target } from '../../config/config.types.js';

/**
 * The one session lifecycle both brokers run (proxy/session-lifecycle.ts), over the real control
 * plane (dev issuer, gate and grants, vault, audit log, catalog, live-session registry). The
 * connect step is the broker's protocol step, so the test supplies it and records what reached
 * it: nothing may reach it without a grant and a revealed credential.
 */

const targets: Target[] = [
  { name: 'lc-web', protocol: 'ssh', host: '127.0.0.1', port: 1, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 'lc-root' }, nobody: { secret: 'lc-missing' } }, defaultAction: 'allow' },
];

let cp: TestControlPlane;
let lifecycle: SessionLifecycle;

beforeAll(async () => {
  cp = await startControlPlane({ targets });
  await cp.setSecret('lc-root', 'root-password-1');
  lifecycle = new SessionLifecycle(cp.deps);
});

afterAll(async () => {
  await cp?.close();
});

const request = (credential: OpenRequest['credential'], extra: Partial<OpenRequest> = {}): OpenRequest =>
  ({ protocol: 'ssh', target: 'lc-web', login: 'root', client: '127.0.0.1:5555', credential, ...extra });

/** A connect step that keeps a copy of what it was given and the buffer itself (to see it wiped). */
function recordingConnect(result: (auth: Authorized) => Promise<string> = async () => 'upstream') {
  const seen: { copy: string; buffer: Buffer; auth: Authorized }[] = [];
  const connect = (auth: Authorized, credential: Buffer) => {
    seen.push({ copy: credential.toString(), buffer: credential, auth });
    return result(auth);
  };
  return { seen, connect };
}

async function refusal(p: Promise<unknown>): Promise<SessionRefused> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(SessionRefused);
  return err as SessionRefused;
}

describe('open', () => {
  it('refuses a bad token before anything else, audited with a reason and never the token', async () => {
    const forged = `${await cp.token('mallory')}x`;
    const { seen, connect } = recordingConnect();
    const r = await refusal(lifecycle.open(request({ kind: 'token', token: forged }), connect));
    expect(r.code).toBe('token');
    expect(seen).toHaveLength(0);
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'session.refused' && e.target === 'lc-web' && String(e.why).startsWith('token rejected'))).toBe(true);
    expect(await readFile(join(cp.dataDir, 'audit.log'), 'utf8')).not.toContain(forged.slice(0, 40));
  });

  it('refuses without a grant: the connect step never runs and no credential is revealed', async () => {
    const { seen, connect } = recordingConnect();
    const r = await refusal(lifecycle.open(request({ kind: 'token', token: await cp.token('bob') }), connect));
    expect(r.code).toBe('no-grant');
    expect(r.message).toContain('pam request --target lc-web --login root');
    expect(seen).toHaveLength(0);
    expect((await cp.audit()).some((e) => e.type === 'session.refused' && e.actor === 'bob' && e.target === 'lc-web')).toBe(true);
  });

  it('refuses when the vaulted credential is missing, without calling connect', async () => {
    await cp.grant('carol', 'lc-web', 'nobody');
    const { seen, connect } = recordingConnect();
    const r = await refusal(lifecycle.open(request({ kind: 'token', token: await cp.token('carol') }, { login: 'nobody' }), connect));
    expect(r.code).toBe('credential');
    expect(seen).toHaveLength(0);
    expect((await cp.audit()).some((e) => e.type === 'session.failed' && e.actor === 'carol' && String(e.why).startsWith('credential unavailable'))).toBe(true);
  });

  it('hands the revealed credential to connect with the grant proof, and wipes it afterwards', async () => {
    const grant = await cp.grant('alice', 'lc-web', 'root');
    const { seen, connect } = recordingConnect();
    const opened = await lifecycle.open(request({ kind: 'token', token: await cp.token('alice') }), connect);
    expect(opened.upstream).toBe('upstream');
    expect(opened.auth.grant.id).toBe(grant.id);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.copy).toBe('root-password-1');
    expect(seen[0]!.auth).toBe(opened.auth);
    expect(seen[0]!.buffer.every((b) => b === 0)).toBe(true);
    expect(JSON.stringify(await cp.audit())).not.toContain('root-password-1');
  });

  it('audits a target refusal (host key) as session.refused with its detail, and a failure as session.failed', async () => {
    await cp.grant('dave', 'lc-web', 'root');
    const token = await cp.token('dave');
    const mismatch = recordingConnect(async () => { throw new TargetRefused('host key of target "lc-web" does not match', 'host-key-mismatch', { presented: 'SHA256:evil' }); });
    const wiped = mismatch.seen;
    expect((await refusal(lifecycle.open(request({ kind: 'token', token }), mismatch.connect))).code).toBe('host-key-mismatch');
    expect(wiped[0]!.buffer.every((b) => b === 0)).toBe(true);
    const down = recordingConnect(async () => { throw new Error('cannot reach target "lc-web": ECONNREFUSED'); });
    const r = await refusal(lifecycle.open(request({ kind: 'token', token }), down.connect));
    expect(r).toMatchObject({ code: 'upstream', message: 'cannot reach target "lc-web": ECONNREFUSED' });
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'session.refused' && e.actor === 'dave' && e.code === 'host-key-mismatch' && e.presented === 'SHA256:evil')).toBe(true);
    expect(audit.some((e) => e.type === 'session.failed' && e.actor === 'dave' && e.code === 'upstream')).toBe(true);
  });

  it('stops when the client has gone: nothing is connected or audited as a refusal', async () => {
    await cp.grant('erin', 'lc-web', 'root');
    const gone = new AbortController();
    gone.abort();
    const before = (await cp.audit()).length;
    const { seen, connect } = recordingConnect();
    const r = await refusal(lifecycle.open(request({ kind: 'token', token: await cp.token('erin') }, { signal: gone.signal }), connect));
    expect(r.code).toBe('gone');
    expect(seen).toHaveLength(0);
    expect((await cp.audit()).slice(before).filter((e) => e.type.startsWith('session.'))).toEqual([]);
  });
});

describe('attach and finish', () => {
  async function openFor(user: string) {
    await cp.grant(user, 'lc-web', 'root');
    const { connect } = recordingConnect();
    return lifecycle.open(request({ kind: 'token', token: await cp.token(user) }), connect);
  }

  it('registers the session, ends it when the grant is revoked, then seals the recording and audits the end', async () => {
    const { auth } = await openFor('frank');
    const ended: string[] = [];
    const live = await lifecycle.attach(auth, {
      client: '127.0.0.1:5555',
      record: (meta) => cp.deps.recordings.start('asciicast', meta, { header: { width: 80, height: 24, env: {}, title: 't' } }),
      end: (reason) => ended.push(reason),
    });
    expect(cp.deps.sessions.get(live.id)).toMatchObject({ user: 'frank', target: 'lc-web', login: 'root', grantId: auth.grant.id, recordingId: live.id });
    live.recording.output('hello\r\n');
    await cp.revoke(auth.grant.id);
    await waitFor(async () => ended.length > 0, 'grant watch fired');
    expect(ended).toEqual(['access revoked by approver-bot']);
    await live.finish(ended[0]!);
    await live.finish('again'); // idempotent
    expect(cp.deps.sessions.get(live.id)).toBeUndefined();
    const meta = await cp.deps.recordings.get(live.id);
    expect(meta).toMatchObject({ status: 'ended', endReason: 'access revoked by approver-bot', grantId: auth.grant.id });
    expect(meta!.sha256).toMatch(/^[0-9a-f]{64}$/);
    const audit = await cp.audit();
    expect(audit.filter((e) => e.type === 'session.start' && e.recording === live.id)).toHaveLength(1);
    expect(audit.filter((e) => e.type === 'session.end' && e.recording === live.id)).toEqual([
      expect.objectContaining({ actor: 'frank', reason: 'access revoked by approver-bot', sha256: meta!.sha256 }),
    ]);
  });

  it('an auditor kill through the registry reaches the session', async () => {
    const { auth } = await openFor('gina');
    const ended: string[] = [];
    const live = await lifecycle.attach(auth, {
      client: '127.0.0.1:5555',
      record: (meta) => cp.deps.recordings.start('asciicast', meta, { header: { width: 80, height: 24, env: {}, title: 't' } }),
      end: (reason) => ended.push(reason),
    });
    expect(cp.deps.sessions.kill(live.id, 'killed by auditor zed')).toBe(true);
    expect(ended).toEqual(['killed by auditor zed']);
    await live.finish(ended[0]!);
  });

  it('serves a session only once its session.start is in the audit file; one that cannot be audited is refused, unregistered, its recording closed', async () => {
    const { auth } = await openFor('ivan');
    const record = (meta: Parameters<typeof cp.deps.recordings.start>[1]) => cp.deps.recordings.start('asciicast', meta, { header: { width: 80, height: 24, env: {}, title: 't' } });
    const live = await lifecycle.attach(auth, { client: '127.0.0.1:5555', record, end: () => undefined });
    const file = readFileSync(join(cp.dataDir, 'audit.log'), 'utf8'); // as attach resolves, not later
    expect(file.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.type === 'session.start' && e.recording === live.id)).toHaveLength(1);
    await live.finish('done');

    // Fault: the audit log refuses the session.start append (a full disk).
    const failing = new SessionLifecycle({ ...cp.deps, audit: { ...cp.deps.audit, read: cp.deps.audit.read.bind(cp.deps.audit), append: (e) => (e.type === 'session.start' ? Promise.reject(new Error('ENOSPC')) : cp.deps.audit.append(e)) } });
    const { auth: auth2 } = await openFor('ivan');
    const before = cp.deps.sessions.list().length;
    let opened: string | undefined;
    const r = await refusal(failing.attach(auth2, { client: '127.0.0.1:5555', record: async (meta) => { const w = await record(meta); opened = w.id; return w; }, end: () => undefined }));
    expect(r.code).toBe('recording');
    expect(opened).toBeDefined(); // the fault fired after the recording was opened
    expect(cp.deps.sessions.list()).toHaveLength(before);
    expect(await cp.deps.recordings.get(opened!)).toMatchObject({ status: 'ended', endReason: 'the session start could not be audited' });
  });

  it('refuses the session when its recording cannot be opened (fail closed), and registers nothing', async () => {
    const { auth } = await openFor('hal');
    const live = cp.deps.sessions.list().length;
    const r = await refusal(lifecycle.attach(auth, { client: '127.0.0.1:5555', record: async () => { throw new Error('ENOSPC'); }, end: () => undefined }));
    expect(r.code).toBe('recording');
    expect(cp.deps.sessions.list()).toHaveLength(live);
    expect((await cp.audit()).some((e) => e.type === 'session.failed' && e.actor === 'hal' && e.code === 'recording')).toBe(true);
  });
});
