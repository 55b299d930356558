import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { runOpenSsh, startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import { recordingCast } from '../../recorder/export.js';

// The target sshd runs on this machine, so "at the target" is this filesystem.
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;
let dir: string;
let token: string;

beforeAll(async () => {
  sshd = await startSshd();
  cp = await startControlPlane({
    targets: [{ name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' }],
  });
  await cp.setSecret('web-root', sshd.userKey);
  broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'web', 'root');
  token = await cp.token('alice');
  dir = await mkdtemp(join(tmpdir(), 'pam-scp-'));
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  await sshd?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const at = () => ['-o', `Port=${broker.port}`, '-o', 'User=root@web'];

async function latestCast(): Promise<string> {
  const meta = await waitFor(async () => (await cp.deps.recordings.list()).find((m) => m.status === 'ended'), 'a sealed recording');
  return recordingCast(meta, cp.deps.recordings.dataPath(meta.id, meta.format));
}

describe('ssh broker with the OpenSSH client', () => {
  it('runs a command with its exit status and passes only allowed env vars', async () => {
    const r = await runOpenSsh('ssh', token, [...at(), '-o', 'SetEnv=LC_PAMTEST=yes NOTALLOWED=leak', '127.0.0.1', 'echo hello-$((2*3)) ${LC_PAMTEST}-${NOTALLOWED}x; exit 3']);
    expect(r.stdout).toBe('hello-6 yes-x\n');
    expect(r.code).toBe(3);
  });

  it('tells a user without a grant what to run', async () => {
    const r = await runOpenSsh('ssh', await cp.token('bob'), [...at(), '127.0.0.1', 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('no active grant for root@web');
    expect(r.stderr).toContain('pam request --target web --login root');
  });

  it('copies files both ways with scp (SFTP and legacy protocol) and records the transfers', async () => {
    const content = randomBytes(300_000);
    const local = join(dir, 'up.bin');
    await writeFile(local, content);
    for (const legacy of [false, true]) {
      const remote = join(dir, `remote-${legacy ? 'legacy' : 'sftp'}.bin`);
      const flags = legacy ? ['-O'] : [];
      const up = await runOpenSsh('scp', token, [...flags, ...at(), local, `127.0.0.1:${remote}`]);
      expect(up.stderr).not.toContain('[pam]');
      expect(up.code).toBe(0);
      expect((await readFile(remote)).equals(content)).toBe(true);
      const back = join(dir, `back-${legacy ? 'legacy' : 'sftp'}.bin`);
      const down = await runOpenSsh('scp', token, [...flags, ...at(), `127.0.0.1:${remote}`, back]);
      expect(down.code).toBe(0);
      expect((await readFile(back)).equals(content)).toBe(true);
    }
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.exec' && String(e.command).startsWith('scp -t'))).toBe(true);
    expect(audit.some((e) => e.type === 'ssh.subsystem' && e.name === 'sftp')).toBe(true);
  });

  it('puts and gets files with sftp and records path, op and bytes', async () => {
    const content = randomBytes(100_000);
    const local = join(dir, 'sftp-local.bin');
    await writeFile(local, content);
    const remote = join(dir, 'sftp-remote.bin');
    const back = join(dir, 'sftp-back.bin');
    const before = Date.now();
    const r = await runOpenSsh('sftp', token, [...at(), '127.0.0.1'], `put ${local} ${remote}\nget ${remote} ${back}\nmkdir ${join(dir, 'newdir')}\nrm ${remote}\nbye\n`);
    expect(r.code).toBe(0);
    expect((await readFile(back)).equals(content)).toBe(true);
    const meta = await waitFor(async () => (await cp.deps.recordings.list()).find((m) => m.status === 'ended' && Date.parse(m.start) >= before), 'sftp recording');
    const cast = await recordingCast(meta, cp.deps.recordings.dataPath(meta.id, meta.format));
    expect(cast).toContain(`"sftp upload ${remote} (100000 bytes)"`);
    expect(cast).toContain(`"sftp download ${remote} (100000 bytes)"`);
    expect(cast).toContain(`"sftp mkdir ${join(dir, 'newdir')}"`);
    expect(cast).toContain(`"sftp remove ${remote}"`);
    void latestCast;
  });
});
