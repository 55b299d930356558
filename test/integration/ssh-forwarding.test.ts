/**
 * Remote (-R), agent and X11 forwarding through the proxy to a real OpenSSH sshd, under the
 * channel policy: relayed when a rule allows them (target "fwd"), refused and audited without
 * one (target "bare", same sshd). Checked where the user would see it: a connection made ON the
 * target reaches a server on the client side, `ssh-add -l` ON the target lists the client's key,
 * bytes written to the target's $DISPLAY reach the client's X11 handler.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startSshd, runOpenSsh, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { SshTarget } from '../../config/config.types.js';
import { recordingCast } from '../../recorder/export.js';

const rules = `
command_rules:
  - name: fwd-remote-loopback
    protocol: ssh
    targets: [fwd]
    match: { channel: port-forward, destination: '127.0.0.1:*' }
    action: allow
  - name: fwd-agent
    protocol: ssh
    targets: [fwd]
    match: { channel: agent-forward }
    action: allow
  - name: fwd-x11
    protocol: ssh
    targets: [fwd]
    match: { channel: x11 }
    action: allow
`;

const tmp = mkdtempSync(join(tmpdir(), 'pam-fwd-'));
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;
let agent: ChildProcess;
const agentSock = join(tmp, 'agent.sock');
let keyFingerprint = '';

beforeAll(async () => {
  // sshd runs `xauth` for X11 sessions; this wrapper keeps its cookie file out of root's home.
  const xauth = join(tmp, 'xauth');
  writeFileSync(xauth, `#!/bin/sh\nexec /usr/bin/xauth -f ${join(tmp, 'Xauthority')} "$@"\n`);
  chmodSync(xauth, 0o755);
  sshd = await startSshd({ config: ['AllowAgentForwarding yes', 'AllowTcpForwarding yes', 'X11Forwarding yes', `XAuthLocation ${xauth}`] });
  const target = (name: string): SshTarget => ({ name, protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'root-key' } }, defaultAction: 'allow' });
  cp = await startControlPlane({ targets: [target('fwd'), target('bare')], roles: rules });
  await cp.setSecret('root-key', sshd.userKey);
  broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'fwd', 'root');
  await cp.grant('alice', 'bare', 'root');

  // The client side's own ssh-agent, holding a key the target has never seen.
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'client-agent-key', '-f', join(tmp, 'client_key')]);
  keyFingerprint = execFileSync('ssh-keygen', ['-lf', join(tmp, 'client_key.pub')]).toString().split(/\s+/)[1]!;
  agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
  await waitFor(() => existsSync(agentSock), 'ssh-agent socket');
  execFileSync('ssh-add', [join(tmp, 'client_key')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' });
  // runOpenSsh passes this process's environment: `ssh -A` forwards this agent (this file runs in its own worker).
  process.env.SSH_AUTH_SOCK = agentSock;
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  await sshd?.close();
  agent?.kill();
  rmSync(tmp, { recursive: true, force: true });
});

const at = (target: string) => ['-p', String(broker.port), '-l', `root@${target}`];

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A server on the client side that greets whoever the forward brings to it. */
async function greeter(): Promise<{ server: Server; port: number }> {
  const server = createServer((sock) => sock.end('hello-from-client-side\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** Markers of the sealed recording of the latest session on `target`. */
async function sessionMarkers(target: string): Promise<string[]> {
  const audit = await cp.audit();
  const start = audit.filter((e) => e.type === 'session.start' && e.target === target).at(-1);
  const id = start?.recording as string;
  await waitFor(async () => (await cp.audit()).some((e) => e.type === 'session.end' && e.recording === id), 'recording sealed');
  const meta = (await cp.deps.recordings.get(id))!;
  const cast = await recordingCast(meta, cp.deps.recordings.dataPath(id, meta.format));
  return cast.trim().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'm').map((e) => e[2]);
}

describe('remote forwarding (ssh -R)', () => {
  it('allowed by a rule: a connection made on the target to the bound port reaches a server on the client side', async () => {
    const { server, port: local } = await greeter();
    const remote = await freePort();
    try {
      const r = await runOpenSsh('ssh', await cp.token('alice'), [
        ...at('fwd'), '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${remote}:127.0.0.1:${local}`, '127.0.0.1',
        `exec 3<>/dev/tcp/127.0.0.1/${remote} && head -n1 <&3`,
      ]);
      expect(r.stderr).not.toMatch(/forwarding failed/);
      expect(r.stdout.trim()).toBe('hello-from-client-side');
      expect(r.code).toBe(0);
    } finally {
      server.close();
    }
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.forward' && e.request === 'tcpip-forward' && e.destination === `127.0.0.1:${remote}` && e.rule === 'fwd-remote-loopback')).toBe(true);
    expect(audit.some((e) => e.type === 'ssh.forward.connection' && e.destination === `127.0.0.1:${remote}`)).toBe(true);
    const m = await sessionMarkers('fwd');
    expect(m.some((x) => x.startsWith(`remote forward (-R) 127.0.0.1:${remote} listening on target port ${remote} (rule fwd-remote-loopback)`))).toBe(true);
    expect(m.some((x) => /^remote forward \(-R\) .* closed: 23 bytes up, 0 bytes down$/.test(x))).toBe(true);
  });

  it('without a rule: refused, nothing listens on the target, audited', async () => {
    const remote = await freePort();
    const r = await runOpenSsh('ssh', await cp.token('alice'), [...at('bare'), '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${remote}:127.0.0.1:9`, '127.0.0.1', 'echo ran']);
    expect(r.stderr).toMatch(/remote port forwarding failed/i);
    expect(r.stdout).not.toContain('ran');
    // The target is on this machine: nothing accepts on the port it would have bound.
    const bound = await new Promise<boolean>((resolve) => {
      const c = connect(remote, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    expect(bound).toBe(false);
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.channel.refused' && e.request === 'tcpip-forward' && e.destination === `127.0.0.1:${remote}`)).toBe(true);
    expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'port-forward' && e.destination === `127.0.0.1:${remote}` && e.rule === 'default_action')).toBe(true);
  });
});

describe('agent forwarding (ssh -A)', () => {
  const listKeys = 'echo "sock=${SSH_AUTH_SOCK:-none}"; ssh-add -l';

  it("allowed by a rule: ssh-add -l on the target lists the client's key", async () => {
    const r = await runOpenSsh('ssh', await cp.token('alice'), [...at('fwd'), '-A', '127.0.0.1', listKeys]);
    expect(r.stdout).not.toContain('sock=none');
    expect(r.stdout).toContain(keyFingerprint);
    expect(r.stdout).toContain('client-agent-key');
    expect(r.code).toBe(0);
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.forward' && e.channel === 'agent-forward' && e.rule === 'fwd-agent')).toBe(true);
    expect(audit.some((e) => e.type === 'ssh.forward.connection' && e.channel === 'agent-forward')).toBe(true);
    const m = await sessionMarkers('fwd');
    expect(m).toContain('agent forwarding (rule fwd-agent)');
    expect(m).toContain('agent channel opened by the target');
  });

  it('without a rule: refused, the target has no agent socket, audited', async () => {
    const r = await runOpenSsh('ssh', await cp.token('alice'), [...at('bare'), '-A', '127.0.0.1', listKeys]);
    expect(r.stdout).toContain('sock=none');
    expect(r.stdout).not.toContain(keyFingerprint);
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.channel.refused' && e.channel === 'agent-forward' && e.target === 'bare')).toBe(true);
    expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'agent-forward' && e.target === 'bare')).toBe(true);
  });
});

describe('X11 forwarding (ssh -X)', () => {
  const haveXauth = (() => {
    try {
      execFileSync('sh', ['-c', 'command -v xauth'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  // sshd refuses X11 without xauth (Debian package xauth).
  const itX = haveXauth ? it : it.skip;
  const sendToDisplay = 'echo "display=${DISPLAY:-none}"; [ -n "$DISPLAY" ] || exit 3; d=${DISPLAY#*:}; d=${d%%.*}; printf x11-hello-from-target > /dev/tcp/127.0.0.1/$((6000+d))';

  async function connect(target: string): Promise<ssh2.Client> {
    const password = await cp.token('alice');
    return new Promise((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c)).once('error', reject);
      c.connect({ host: '127.0.0.1', port: broker.port, username: `root@${target}`, password, readyTimeout: 20_000 });
    });
  }

  function execX11(c: ssh2.Client, command: string): Promise<{ stdout: string; x11: string; code: number | null } | Error> {
    return new Promise((resolve) => {
      let x11 = '';
      c.on('x11', (_info, accept) => {
        const ch = accept();
        ch.on('data', (d: Buffer) => (x11 += d.toString()));
        ch.on('end', () => ch.end());
      });
      c.exec(command, { x11: { cookie: 'ab'.repeat(16), protocol: 'MIT-MAGIC-COOKIE-1', screen: 0 } }, (err, ch) => {
        if (err) return resolve(err);
        let stdout = '';
        let code: number | null = null;
        ch.on('data', (d: Buffer) => (stdout += d.toString()));
        ch.on('exit', (x: number | null) => (code = x));
        ch.on('close', () => resolve({
          stdout, code,
          get x11() { return x11; },
        }));
      });
    });
  }

  itX('allowed by a rule: bytes written to $DISPLAY on the target reach the client', async () => {
    const c = await connect('fwd');
    try {
      const r = await execX11(c, sendToDisplay);
      if (r instanceof Error) throw r;
      expect(r.stdout).toMatch(/display=localhost:\d+\.0/);
      await waitFor(() => r.x11.includes('x11-hello-from-target'), 'x11 bytes at the client');
      expect(r.code).toBe(0);
    } finally {
      c.end();
    }
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.forward' && e.channel === 'x11' && e.rule === 'fwd-x11')).toBe(true);
    expect(audit.some((e) => e.type === 'ssh.forward.connection' && e.channel === 'x11')).toBe(true);
    const m = await sessionMarkers('fwd');
    expect(m).toContain('x11 forwarding, screen 0 (rule fwd-x11)');
    expect(m.some((x) => x.startsWith('x11 connection from '))).toBe(true);
  });

  it('without a rule: the x11 request is refused and audited', async () => {
    const c = await connect('bare');
    try {
      const r = await execX11(c, sendToDisplay);
      // ssh2's client fails the exec when its x11-req is refused (OpenSSH's goes on without X11).
      expect(r).toBeInstanceOf(Error);
    } finally {
      c.end();
    }
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.channel.refused' && e.channel === 'x11' && e.target === 'bare')).toBe(true);
    expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'x11' && e.target === 'bare')).toBe(true);
  });
});
