import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import ssh2 from 'ssh2';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { RecordingCatalog } from '../../recorder/catalog.js';

let sshd: TestSshd;
let cp: TestControlPlane;
let child: ChildProcess | undefined;
let token: string;

beforeAll(async () => {
  sshd = await startSshd();
  cp = await startControlPlane({
    targets: [{ name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' }],
  });
  await cp.setSecret('web-root', sshd.userKey);
  await cp.grant('alice', 'web', 'root');
  token = await cp.token('alice');
  // The embedded store has one owner: hand the data dir over to the proxy process.
  await cp.deps.close();
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (cp) await rm(cp.dataDir, { recursive: true, force: true });
  await sshd?.close();
});

/** A proxy in its own process over the same data dir, so it can be SIGKILLed. */
function startProxyProcess(): Promise<number> {
  const root = resolve(import.meta.dirname, '../..');
  const code = `
    const { openControlPlane } = await import(${JSON.stringify(join(root, 'app/control-plane.ts'))});
    const { startSshBroker } = await import(${JSON.stringify(join(root, 'proxy/ssh/server.ts'))});
    const deps = await openControlPlane(JSON.parse(process.env.PAM_TEST_CONFIG));
    const b = await startSshBroker(deps, { host: '127.0.0.1', port: 0 });
    console.log('PORT ' + b.port);
  `;
  child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: root, env: { ...process.env, PAM_TEST_CONFIG: JSON.stringify(cp.config) }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((res, rej) => {
    let out = '';
    child!.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    child!.once('exit', (c) => rej(new Error(`proxy process exited ${c}`)));
  });
}

it('leaves a readable recording when the proxy is SIGKILLed, marked interrupted on restart', async () => {
  const port = await startProxyProcess();
  const client = new ssh2.Client();
  client.on('error', () => {});
  client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => token)));
  await new Promise<void>((r, j) => client.once('ready', () => r()).once('error', j).connect({ host: '127.0.0.1', port, username: 'root@web', tryKeyboard: true }));
  const ch = await new Promise<ssh2.ClientChannel>((r, j) => client.shell({ cols: 90, rows: 20 }, (e, s) => (e ? j(e) : r(s))));
  let seen = '';
  ch.on('data', (d: Buffer) => (seen += d.toString()));
  ch.write('echo before-$((3*3))-crash\r');
  await waitFor(() => seen.includes('before-9-crash'), 'output');
  const catalog = join(cp.dataDir, 'recordings');
  // wait past the 250 ms flush interval, then kill the proxy without warning
  await new Promise((r) => setTimeout(r, 700));
  child!.kill('SIGKILL');
  await new Promise((r) => child!.once('exit', r));
  client.end();

  const reopened = await RecordingCatalog.open(catalog);
  const list = await reopened.list();
  expect(list).toHaveLength(1);
  expect(list[0]).toMatchObject({ status: 'interrupted', user: 'alice', target: 'web' });
  const file = reopened.dataPath(list[0]!.id, 'asciicast');
  expect(await readFile(file, 'utf8')).toContain('before-9-crash');
  const catted = execFileSync('script', ['-qec', `asciinema cat ${file}`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  expect(catted).toContain('before-9-crash');
});
