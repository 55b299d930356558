/**
 * Legacy scp paths are judged as the target's shell reads them (proxy/ssh/scp-command.ts): with
 * a deny for `channel: scp` on `DIR/protected/*`, a real OpenSSH `scp -O` through the proxy to
 * a real sshd cannot write there by quoting the path, by `..`, by a path relative to the
 * login's home, or by a wrapper; a path the parser cannot read (`$VAR`) is refused. Checked at
 * the target: the file does not exist, while an upload to an allowed folder in the same run works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import ssh2 from 'ssh2';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startSshd, runOpenSsh, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';

const dir = `/tmp/pam-scp-${randomBytes(4).toString('hex')}`;
const protectedDir = join(dir, 'protected');
const okDir = join(dir, 'ok');
const local = join(dir, 'local.txt');

const rules = `
command_rules:
  - name: protected-folder
    protocol: ssh
    targets: [files]
    match: { channel: scp, destination: '${protectedDir}/*' }
    action: deny
    message: "No scp into the protected folder."
`;

let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;

beforeAll(async () => {
  mkdirSync(protectedDir, { recursive: true });
  mkdirSync(okDir, { recursive: true });
  writeFileSync(local, 'payload\n');
  sshd = await startSshd();
  cp = await startControlPlane({
    targets: [{ name: 'files', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'root-key' } }, defaultAction: 'allow' }],
    roles: rules,
  });
  await cp.setSecret('root-key', sshd.userKey);
  broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'files', 'root');
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  await sshd?.close();
  rmSync(dir, { recursive: true, force: true });
});

const scpTo = async (remote: string) =>
  runOpenSsh('scp', await cp.token('alice'), ['-O', '-o', `Port=${broker.port}`, '-o', 'User=root@files', local, `127.0.0.1:${remote}`]);

describe('scp -O paths are judged as the target reads them', () => {
  const home = relative('/root', protectedDir);
  // Each is what the user types after "host:"; OpenSSH puts it unquoted into `scp -t PATH`.
  const attacks: [string, (f: string) => string][] = [
    ['double-quoted', (f) => `"${protectedDir}/${f}"`],
    ['single-quoted', (f) => `'${protectedDir}/${f}'`],
    ['partly quoted', (f) => `${dir}/prot"ected"/${f}`],
    ['backslash-escaped', (f) => `${dir}/prot\\ected/${f}`],
    ['with .. through an allowed folder', (f) => `${okDir}/../protected/${f}`],
    ['relative to the login home', (f) => `${home}/${f}`],
    ['~/-relative', (f) => `~/${home}/${f}`],
  ];

  for (const [how, spell] of attacks) {
    it(`${how}: refused, the file is not written; an upload to the allowed folder works`, async () => {
      const name = `f-${randomBytes(3).toString('hex')}`;
      const r = await scpTo(spell(name));
      expect(r.stderr).toContain('No scp into the protected folder.');
      expect(r.code).not.toBe(0);
      expect(existsSync(join(protectedDir, name))).toBe(false);
      const ok = await scpTo(join(okDir, name));
      expect(ok.code).toBe(0);
      expect(existsSync(join(okDir, name))).toBe(true);
      const audit = await cp.audit();
      expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'scp' && e.rule === 'protected-folder' && String(e.destination).includes(name))).toBe(true);
    });
  }

  it('a path with a variable is refused (it cannot be judged); the file is not written', async () => {
    const name = `v-${randomBytes(3).toString('hex')}`;
    const r = await scpTo(`$HOME/${home}/${name}`);
    expect(r.stderr).toContain('scp path cannot be judged');
    expect(existsSync(join(protectedDir, name))).toBe(false);
    expect((await cp.audit()).some((e) => e.type === 'policy.deny' && e.rule === 'scp-path-unknown')).toBe(true);
  });

  it('under a wrapper (env scp -t "…"), speaking the scp protocol by hand: refused, not written', async () => {
    const name = `w-${randomBytes(3).toString('hex')}`;
    const password = await cp.token('alice');
    const c = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve()).once('error', reject);
      c.connect({ host: '127.0.0.1', port: broker.port, username: 'root@files', password, readyTimeout: 20_000 });
    });
    try {
      const r = await new Promise<{ stderr: string; code: number | null }>((resolve, reject) => {
        c.exec(`env scp -t "${protectedDir}/${name}"`, (err, ch) => {
          if (err) return reject(err);
          let stderr = '';
          let code: number | null = null;
          ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          ch.on('data', () => {});
          ch.on('exit', (x: number | null) => (code = x));
          ch.on('close', () => resolve({ stderr, code }));
          ch.end('C0644 8 x\npayload\n\0');
        });
      });
      expect(r.stderr).toContain('No scp into the protected folder.');
      expect(r.code).toBe(126);
    } finally {
      c.end();
    }
    expect(existsSync(join(protectedDir, name))).toBe(false);
  });
});
