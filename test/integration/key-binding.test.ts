/**
 * `pam login --key` needs proof of possession (issue 12). Against the real `pam serve` process,
 * the real CLI, OpenSSH's ssh-keygen/ssh-agent/ssh and a real sshd target: someone holding only
 * a colleague's public key cannot bind it; someone holding the same key pair cannot take over
 * the colleague's binding (409, audited); the owner still logs in with the key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startSshd, type TestSshd } from '../helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';

let sshd: TestSshd;
let pam: PamProcess;
let alice: string;
let bob: string;
let sam: string;

const keygen = (file: string, type = 'ed25519') => execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', '', '-f', file]);
const noAgent = { SSH_AUTH_SOCK: '' };

function sshWithKey(keyFile: string, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('ssh', ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
      '-o', 'PreferredAuthentications=publickey', '-i', keyFile, '-p', String(pam.ports.ssh), '-l', 'root@web1', '127.0.0.1', command], { env: { ...process.env, SSH_AUTH_SOCK: '' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.end();
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  sshd = await startSshd();
  pam = await startPamProcess({
    roles: `roles:
  - name: admin
    groups: [admins]
    can_request: [{ targets: ["*"], logins: ["*"], max_duration: 1h }]
  - name: security
    groups: [security]
    can_approve: [admin]
    can_audit: true
`,
    extra: `targets:
  - name: web1
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web1-root } }
`,
  });
  expect((await pam.pam(['secret', 'set', 'web1-root'], {}, sshd.userKey)).code).toBe(0);
  alice = (await pam.pam(['dev', 'token', 'alice', '--groups', 'admins'])).stdout.trim();
  bob = (await pam.pam(['dev', 'token', 'bob', '--groups', 'admins'])).stdout.trim();
  sam = (await pam.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
  const req = await pam.pam(['request', '--target', 'web1', '--login', 'root', '--duration', '30m', '--reason', 'keys', '--json'], { PAM_TOKEN: alice });
  expect((await pam.pam(['approve', JSON.parse(req.stdout).id], { PAM_TOKEN: sam })).code).toBe(0);
}, 120_000);

afterAll(async () => {
  await pam?.stop();
  await sshd?.close();
});

describe('SSH key binding with proof of possession', () => {
  it('refuses a takeover of a bound key and keeps the owner logging in', async () => {
    const aliceDir = join(pam.dir, 'alice');
    await mkdir(aliceDir);
    keygen(join(aliceDir, 'id_ed25519'));
    const bound = await pam.pam(['login', '--key', join(aliceDir, 'id_ed25519.pub')], { PAM_TOKEN: alice, ...noAgent });
    expect(bound.stderr).toBe('');
    expect(bound.stdout).toMatch(/^key SHA256:\S+ bound until /);

    // Bob has only Alice's public key: no private key beside it, no agent. Refused before any request.
    const bobDir = join(pam.dir, 'bob');
    await mkdir(bobDir);
    await copyFile(join(aliceDir, 'id_ed25519.pub'), join(bobDir, 'stolen.pub'));
    const noProof = await pam.pam(['login', '--key', join(bobDir, 'stolen.pub')], { PAM_TOKEN: bob, ...noAgent });
    expect(noProof.code).toBe(1);
    expect(noProof.stderr).toContain('cannot prove you hold the private key');

    // Bob speaks to the API directly with a made-up signature: 400, audited, nothing bound.
    const pub = execFileSync('cat', [join(aliceDir, 'id_ed25519.pub')]).toString().trim();
    const api = (path: string, body: unknown) => fetch(pam.server + path, { method: 'POST', headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const { challenge } = (await (await api('/api/v1/ssh-keys/challenge', { public_key: pub })).json()) as { challenge: string };
    const forged = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 64]), Buffer.alloc(64, 7)]);
    const r1 = await api('/api/v1/ssh-keys', { public_key: pub, challenge, signature: forged.toString('base64') });
    expect(r1.status).toBe(400);
    // The old, proof-less request shape is refused too.
    expect((await api('/api/v1/ssh-keys', { public_key: pub })).status).toBe(400);

    // Bob has the very same key pair (a shared key): the proof is valid, the binding is Alice's. 409.
    await copyFile(join(aliceDir, 'id_ed25519'), join(bobDir, 'shared'));
    await copyFile(join(aliceDir, 'id_ed25519.pub'), join(bobDir, 'shared.pub'));
    execFileSync('chmod', ['600', join(bobDir, 'shared')]);
    const takeover = await pam.pam(['login', '--key', join(bobDir, 'shared.pub')], { PAM_TOKEN: bob, ...noAgent });
    expect(takeover.code).toBe(1);
    expect(takeover.stderr).toMatch(/bound to another user.*\(HTTP 409\)/);

    const audit = JSON.parse((await pam.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string; actor?: string; owner?: string }[];
    expect(audit.filter((e) => e.type === 'ssh-key.bind').map((e) => e.actor)).toEqual(['alice']);
    expect(audit.some((e) => e.type === 'ssh-key.takeover-refused' && e.actor === 'bob' && e.owner === 'alice')).toBe(true);
    expect(audit.some((e) => e.type === 'ssh-key.refused' && e.actor === 'bob')).toBe(true);

    // At the target: Alice's key still logs in as Alice.
    const ssh = await sshWithKey(join(aliceDir, 'id_ed25519'), 'echo key-$((6*7))');
    expect(ssh.stdout.trim()).toBe('key-42');
    const sessions = JSON.parse((await pam.pam(['recordings', 'list', '--json'], { PAM_TOKEN: sam })).stdout) as { user: string }[];
    expect(sessions.map((s) => s.user)).toEqual(['alice']);
  }, 120_000);

  it('signs with the ssh-agent when the private key is not beside the public one', async () => {
    const dir = join(pam.dir, 'agent');
    await mkdir(dir);
    keygen(join(dir, 'id_ecdsa'), 'ecdsa');
    const sock = join(dir, 'agent.sock');
    const agentOut = execFileSync('ssh-agent', ['-a', sock]).toString();
    const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agentOut)![1]);
    try {
      execFileSync('ssh-add', ['-q', join(dir, 'id_ecdsa')], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
      await rm(join(dir, 'id_ecdsa'));
      const r = await pam.pam(['login', '--key', join(dir, 'id_ecdsa.pub')], { PAM_TOKEN: alice, SSH_AUTH_SOCK: sock });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^key SHA256:\S+ bound until /);
      // Without the agent the same command has nothing to sign with.
      const none = await pam.pam(['login', '--key', join(dir, 'id_ecdsa.pub')], { PAM_TOKEN: alice, ...noAgent });
      expect(none.code).toBe(1);
    } finally {
      process.kill(agentPid, 'SIGTERM');
    }
  }, 60_000);
});
