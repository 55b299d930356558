import { generateEd25519 } from '../../proxy/ssh/ed25519-keygen.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { exec } from '../helpers/ssh-exec.js';
import { bindKeyWithProof } from '../helpers/key-binding.js';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { SshTarget } from '../../config/config.types.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { asciicastToText } from '../../recorder/asciicast-text.js';
import type { PolicyRequest, Verdict } from '../../policies/policy.types.js';
import { policyEngineOf } from '../helpers/policy-engine.js';
import { recordingCast } from '../../recorder/export.js';

type Client = ssh2.Client;

let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;

function target(name: string, hostKey: string): SshTarget {
  return { name, protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' };
}

beforeAll(async () => {
  sshd = await startSshd();
  const wrongKey = generateEd25519().public.split(' ').slice(0, 2).join(' ');
  cp = await startControlPlane({ targets: [target('web', sshd.hostKey), target('web-wrongkey', wrongKey)] });
  await cp.setSecret('web-root', sshd.userKey);
  broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'web', 'root');
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  await sshd?.close();
});

interface Connected { client: Client; instructions: string[] }

/** ssh2 client through the proxy, answering the `IAM token:` prompt; rejects with the instructions it saw. */
function connect(user: string, token: string, method: 'keyboard-interactive' | 'password' = 'keyboard-interactive'): Promise<Connected> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const instructions: string[] = [];
    client.on('banner', (msg: string) => instructions.push(msg));
    client.on('keyboard-interactive', (_name, instr, _lang, prompts, finish) => {
      if (instr) instructions.push(instr);
      finish(prompts.map(() => token));
    });
    client.once('ready', () => resolve({ client, instructions }));
    client.once('error', (err) => reject(Object.assign(err, { instructions })));
    client.once('close', () => reject(Object.assign(new Error('connection closed'), { instructions })));
    client.connect({
      host: '127.0.0.1', port: broker.port, username: user, readyTimeout: 20_000,
      ...(method === 'password' ? { password: token } : { tryKeyboard: true }),
    });
  });
}


/** The recording of the newest live session of `user` (call while the session is live). */
function liveRecordingId(user: string): string {
  const live = cp.deps.sessions.list().filter((s) => s.user === user).sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  if (!live[0]) throw new Error(`no live session of ${user}`);
  return live[0].recordingId;
}

async function endedRecording(id: string): Promise<{ meta: RecordingMeta; cast: string }> {
  const meta = await waitFor(async () => {
    const m = await cp.deps.recordings.get(id);
    return m?.status === 'ended' ? m : undefined;
  }, 'recording sealed');
  return { meta, cast: await recordingCast(meta, cp.deps.recordings.dataPath(meta.id, meta.format)) };
}

function events(cast: string): [number, string, string][] {
  return cast.trim().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]);
}

describe('ssh broker with an ssh2 client', () => {
  it('runs exec commands with output, stderr and exit status, and records them', async () => {
    const { client } = await connect('root@web', await cp.token('alice'));
    const recId = liveRecordingId('alice');
    const ok = await exec(client, 'echo out-$((40+2)); echo err-1 >&2');
    expect(ok).toMatchObject({ stdout: 'out-42\n', stderr: 'err-1\n', code: 0 });
    const fail = await exec(client, 'exit 7');
    expect(fail.code).toBe(7);
    // several channels on one connection, concurrently
    const many = await Promise.all([1, 2, 3].map((n) => exec(client, `echo ch-${n}`)));
    expect(many.map((r) => r.stdout)).toEqual(['ch-1\n', 'ch-2\n', 'ch-3\n']);
    client.end();
    const { meta, cast } = await endedRecording(recId);
    // No pty: recorded raw (the exact bytes), rendered as asciicast events to read here.
    expect(meta).toMatchObject({ protocol: 'ssh', format: 'raw', login: 'root', target: 'web', status: 'ended' });
    expect(meta.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(meta.bytes).toBe((await stat(cp.deps.recordings.dataPath(meta.id, 'raw'))).size);
    const ev = events(cast);
    expect(ev).toContainEqual([expect.any(Number), 'm', 'exec: echo out-$((40+2)); echo err-1 >&2']);
    expect(ev).toContainEqual([expect.any(Number), 'm', 'exit status 7']);
    // Rendered for a terminal: a bare \n of a channel without a pty shows as \r\n (the raw file keeps \n).
    expect(ev.filter((e) => e[1] === 'o').map((e) => e[2]).join('')).toContain('out-42\r\n');
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.exec' && e.command === 'exit 7' && e.actor === 'alice')).toBe(true);
  });

  it('relays an interactive pty shell, records resize and input, and masks keystrokes the target does not echo', async () => {
    const { client } = await connect('root@web', await cp.token('alice'));
    const recId = liveRecordingId('alice');
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.shell({ cols: 100, rows: 30, term: 'xterm-256color' }, (err, s) => (err ? reject(err) : resolve(s))));
    let seen = '';
    ch.on('data', (d: Buffer) => (seen += d.toString()));
    ch.write('echo hi-$((6*7))\r');
    await waitFor(() => seen.includes('hi-42'), 'shell output');
    ch.setWindow(40, 120, 0, 0);
    ch.write('stty size\r');
    await waitFor(() => seen.includes('40 120'), 'new size at target');
    ch.write('read -s -p PASS$((1+1)): SECRET; echo got-${#SECRET}\r');
    await waitFor(() => seen.includes('PASS2:'), 'password prompt');
    for (const c of 'hunter2-topsecret') {
      ch.write(c);
      await new Promise((r) => setTimeout(r, 20));
    }
    ch.write('\r');
    await waitFor(() => seen.includes('got-17'), 'read -s result');
    ch.write('exit\r');
    await new Promise((r) => ch.on('close', r));
    client.end();
    expect(seen).not.toContain('hunter2');

    const { cast, meta } = await endedRecording(recId);
    const header = JSON.parse(cast.split('\n')[0]!);
    expect(header).toMatchObject({ version: 2, width: 100, height: 30, env: { TERM: 'xterm-256color' }, title: 'alice as root@web' });
    const ev = events(cast);
    expect(ev).toContainEqual([expect.any(Number), 'r', '120x40']);
    // what the client saw is what was recorded
    expect(ev.filter((e) => e[1] === 'o').map((e) => e[2]).join('')).toBe(seen);
    const typed = ev.filter((e) => e[1] === 'i').map((e) => e[2]).join('');
    expect(typed).toContain('echo hi-$((6*7))\r');
    expect(typed).toContain('stty size\r');
    expect(typed).toContain('*'.repeat(17) + '\r');
    expect(cast).not.toContain('hunter2');
    expect(cast).not.toContain('topsecret');
    // times never go backwards
    for (let i = 1; i < ev.length; i++) expect(ev[i]![0]).toBeGreaterThanOrEqual(ev[i - 1]![0]);
    // a format check no one here wrote
    // asciinema wants a terminal even for `cat`: give it one with script(1).
    const catted = execFileSync('script', ['-qec', `asciinema cat ${cp.deps.recordings.dataPath(meta.id, 'asciicast')}`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    expect(catted).toContain('hi-42');
    const played = execFileSync('script', ['-qec', `asciinema play -i 0.05 -s 20 ${cp.deps.recordings.dataPath(meta.id, 'asciicast')}`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    expect(played).toContain('hi-42');
    expect(asciicastToText(cast)).toContain('hi-42');
  });

  it('refuses a login without a grant, tells the user what to run, and audits it', async () => {
    const err = await connect('root@web', await cp.token('bob'), 'password').then(() => undefined, (e: Error & { instructions: string[] }) => e);
    expect(err).toBeDefined();
    expect(err!.instructions.join('\n')).toContain('pam request --target web --login root');
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'session.refused' && e.actor === 'bob' && e.target === 'web')).toBe(true);
  });

  it('logs in with a public key bound by `pam login --key`', async () => {
    const pair = generateEd25519();
    const identity = await cp.deps.identity.verify(await cp.token('alice'));
    await bindKeyWithProof(cp.deps.sshKeys, identity, pair);
    const client = await new Promise<Client>((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c)).once('error', reject);
      c.connect({ host: '127.0.0.1', port: broker.port, username: 'root@web', privateKey: pair.private });
    });
    expect((await exec(client, 'echo by-key')).stdout).toBe('by-key\n');
    client.end();
    // an unbound key is refused
    const other = generateEd25519();
    const err = await new Promise<Error | undefined>((resolve) => {
      const c = new ssh2.Client();
      c.once('ready', () => { c.end(); resolve(undefined); }).once('error', resolve);
      c.connect({ host: '127.0.0.1', port: broker.port, username: 'root@web', privateKey: other.private });
    });
    expect(err).toBeDefined();
  });

  it('refuses a bad token', async () => {
    const err = await connect('root@web', 'not-a-token', 'password').then(() => undefined, (e: Error & { instructions: string[] }) => e);
    expect(err).toBeDefined();
    expect(err!.instructions.join('\n')).toContain('token rejected');
    expect((await cp.audit()).some((e) => e.type === 'session.refused' && String(e.why).includes('token rejected'))).toBe(true);
  });

  it('refuses the session when the target host key does not match the pinned one', async () => {
    await cp.grant('alice', 'web-wrongkey', 'root');
    const err = await connect('root@web-wrongkey', await cp.token('alice'), 'password').then(() => undefined, (e: Error & { instructions: string[] }) => e);
    expect(err).toBeDefined();
    expect(err!.instructions.join('\n')).toContain('does not match the pinned key');
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'session.refused' && e.code === 'host-key-mismatch' && e.target === 'web-wrongkey')).toBe(true);
  });

  it('ends a live shell on revocation with a one-line reason', async () => {
    const grant = await cp.grant('carol', 'web', 'root');
    const { client } = await connect('root@web', await cp.token('carol'));
    const recId = liveRecordingId('carol');
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell((err, s) => (err ? reject(err) : resolve(s))));
    let seen = '';
    ch.on('data', (d: Buffer) => (seen += d.toString()));
    ch.stderr.on('data', (d: Buffer) => (seen += d.toString()));
    ch.write('echo up-$((1+1))\r');
    await waitFor(() => seen.includes('up-2'), 'shell up');
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    await cp.revoke(grant.id);
    await closed;
    expect(seen).toContain('[pam] session ended: access revoked');
    const { meta, cast } = await endedRecording(recId);
    expect(meta.endReason).toContain('access revoked');
    expect(cast).toContain('"kill: access revoked');
    expect(cp.deps.sessions.list().some((s) => s.user === 'carol')).toBe(false);
  });

  it('ends a session when its grant expires', async () => {
    await cp.grant('erin', 'web', 'root', 2500);
    const { client } = await connect('root@web', await cp.token('erin'));
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.exec('sleep 30', (err, s) => (err ? reject(err) : resolve(s))));
    let err = '';
    ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((r) => client.once('close', () => r()));
    expect(err).toContain('[pam] session ended: access grant expired');
  });

  it('ends a session killed through the registry', async () => {
    const { client } = await connect('root@web', await cp.token('alice'));
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.exec('sleep 30', (err, s) => (err ? reject(err) : resolve(s))));
    let err = '';
    ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const live = await waitFor(() => cp.deps.sessions.list().find((s) => s.user === 'alice'), 'live session');
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    expect(cp.deps.sessions.kill(live.id, 'killed by auditor dave')).toBe(true);
    await closed;
    expect(err).toContain('[pam] session ended: killed by auditor dave');
  });

  it('reports exit-signal and forwards signal requests to the target', async () => {
    const { client } = await connect('root@web', await cp.token('alice'));
    const killed = await new Promise<{ code: number | null; signal?: string }>((resolve, reject) => {
      client.exec('kill -TERM $$', (err, ch) => {
        if (err) return reject(err);
        ch.on('exit', (code: number | null, signal?: string) => resolve({ code, signal }));
        ch.resume();
      });
    });
    expect(killed.signal).toBe('SIGTERM'); // ssh2 prefixes the wire name "TERM"
    // This sshd (no privilege separation monitor here) logs and refuses signal requests; the
    // log line proves the proxy passed the request on.
    await new Promise<void>((resolve, reject) => {
      client.exec('echo started; sleep 2', (err, ch) => {
        if (err) return reject(err);
        ch.on('data', (d: Buffer) => { if (d.toString().includes('started')) ch.signal('INT'); });
        ch.on('close', () => resolve());
      });
    });
    client.end();
    expect(await readFile(join(sshd.dir, 'sshd.log'), 'utf8')).toContain('session_signal_req');
  });

  it('enforces an exec policy and refuses sftp when the policy says so', async () => {
    const policy = policyEngineOf((req: PolicyRequest): Verdict => {
      if (req.protocol === 'ssh' && req.kind === 'command' && req.command.includes('rm -rf')) return { action: 'deny', rule: 'no-rm', message: 'rm -rf is not allowed here' };
      if (req.protocol === 'ssh' && req.kind === 'channel' && req.channel === 'sftp') return { action: 'deny', rule: 'no-sftp' };
      return { action: 'allow' };
    }, cp.deps.roles);
    const guarded = await startSshBroker({ ...cp.deps, policy }, { host: '127.0.0.1', port: 0 });
    try {
      const client = await new Promise<Client>((resolve, reject) => {
        const c = new ssh2.Client();
        c.once('ready', () => resolve(c)).once('error', reject);
        void cp.token('alice').then((password) => c.connect({ host: '127.0.0.1', port: guarded.port, username: 'root@web', password }));
      });
      const denied = await exec(client, 'rm -rf /tmp/nothing-here');
      expect(denied.code).toBe(126);
      expect(denied.stderr).toContain('rm -rf is not allowed here');
      expect((await exec(client, 'echo fine')).stdout).toBe('fine\n');
      const sftpErr = await new Promise<Error | undefined>((resolve) => client.sftp((err) => resolve(err)));
      expect(sftpErr).toBeDefined();
      client.end();
      const audit = await cp.audit();
      expect(audit.some((e) => e.type === 'ssh.exec.denied' && e.command === 'rm -rf /tmp/nothing-here')).toBe(true);
      expect(audit.some((e) => e.type === 'ssh.subsystem.denied' && e.name === 'sftp')).toBe(true);
    } finally {
      await guarded.close();
    }
  });

  it('holds Enter for the onEnter seam: a denied line never runs at the target', async () => {
    const lines: string[] = [];
    const gated = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 }, {
      onEnter: () => async (line) => {
        lines.push(line);
        return line.includes('forbidden') ? { action: 'deny', message: 'that file is off limits' } : { action: 'allow' };
      },
    });
    const marker = join(sshd.dir, 'forbidden-marker');
    try {
      const token = await cp.token('alice');
      const client = await new Promise<Client>((resolve, reject) => {
        const c = new ssh2.Client();
        c.once('ready', () => resolve(c)).once('error', reject);
        c.connect({ host: '127.0.0.1', port: gated.port, username: 'root@web', password: token });
      });
      const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell({ cols: 100, rows: 30 }, (err, s) => (err ? reject(err) : resolve(s))));
      let seen = '';
      ch.on('data', (d: Buffer) => (seen += d.toString()));
      ch.write('echo ready-$((2+2))\r');
      await waitFor(() => seen.includes('ready-4'), 'shell ready');
      ch.write(`touch ${marker}\r`);
      await waitFor(() => seen.includes('[pam] denied: that file is off limits'), 'denial shown');
      ch.write('echo after-$((3+3))\r');
      await waitFor(() => seen.includes('after-6'), 'shell still usable');
      client.end();
      expect(lines).toContain(`touch ${marker}`);
      await expect(readFile(marker)).rejects.toThrow();
      expect((await cp.audit()).some((e) => e.type === 'ssh.command.denied' && e.command === `touch ${marker}`)).toBe(true);
    } finally {
      await gated.close();
    }
  });

  it('refuses X11 and agent forwarding and audits them', async () => {
    const token = await cp.token('alice');
    const client = await new Promise<Client>((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c)).once('error', reject);
      c.connect({ host: '127.0.0.1', port: broker.port, username: 'root@web', password: token, agent: '/nonexistent/agent.sock' });
    });
    const x11 = await new Promise<Error | undefined>((resolve) => client.exec('true', { x11: true }, (err, ch) => { ch?.resume(); resolve(err); }));
    expect(x11?.message).toMatch(/X11/i);
    const agent = await new Promise<Error | undefined>((resolve) => client.exec('true', { agentForward: true } as ssh2.ExecOptions, (err, ch) => { ch?.resume(); resolve(err); }));
    expect(agent).toBeDefined();
    client.end();
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.channel.refused' && e.channel === 'x11')).toBe(true);
    expect(audit.some((e) => e.type === 'ssh.channel.refused' && e.channel === 'agent-forward')).toBe(true);
  });

  it('refuses port forwarding and audits it', async () => {
    const { client } = await connect('root@web', await cp.token('alice'));
    const err = await new Promise<Error | undefined>((resolve) => client.forwardOut('127.0.0.1', 1234, '127.0.0.1', sshd.port, (e) => resolve(e)));
    expect(err).toBeDefined();
    client.end();
    expect((await cp.audit()).some((e) => e.type === 'ssh.channel.refused' && e.channel === 'port-forward' && e.destination === `127.0.0.1:${sshd.port}`)).toBe(true);
  });
});
