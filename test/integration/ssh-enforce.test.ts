/**
 * Paths into an SSH target that used to skip the command policy (issue 11), tried as an
 * attacker would with the OpenSSH client against a real sshd through the proxy. Each case checks
 * AT THE TARGET (this machine's filesystem) that the denied thing did not happen and that the
 * allowed work of the same session did.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import ssh2 from 'ssh2';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestControlPlane } from '../helpers/control-plane.js';
import { runOpenSsh, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshPolicyStack, type SshPolicyStack } from '../helpers/ssh-policy-stack.js';
import type { Listener } from '../../proxy/broker.types.js';

const dir = `/tmp/pam-enf-${process.pid}-${randomBytes(3).toString('hex')}`;
let stack: SshPolicyStack;
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;
let token: string;
let canary: Server;
let canaryHits = 0;

const rules = (canaryPort: number) => `
command_rules:
  - name: no-canary-port
    protocol: ssh
    targets: [web]
    match: { channel: port-forward, destination: '127.0.0.1:${canaryPort}' }
    action: deny
    message: "Not that port."
  - name: forwards-ok
    protocol: ssh
    targets: [web]
    match: { channel: port-forward, destination: '*' }
    action: allow
  - name: no-forbidden-markers
    protocol: ssh
    match: { command: touch, args_regex: 'x-forbidden' }
    action: deny
    message: "Forbidden marker."
  - name: no-touch-subsystem
    protocol: ssh
    match: { channel: subsystem, destination: 'touchsub' }
    action: deny
    message: "No touchsub."
  - name: strict-allows-echo
    protocol: ssh
    targets: [strict]
    match: { command: [echo, touch] }
    action: allow
`;

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  canary = createServer((sock) => { canaryHits++; sock.destroy(); });
  await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
  stack = await startSshPolicyStack({
    sshd: { config: [`Subsystem touchsub /usr/bin/touch ${dir}/x-subsystem-ran`, 'Subsystem echosub /bin/echo echosub-ran'] },
    targets: { web: 'allow', strict: 'deny' },
    rules: rules((canary.address() as AddressInfo).port),
    user: 'alice',
  });
  ({ sshd, cp, broker } = stack);
  token = await cp.token('alice');
});

afterAll(async () => {
  await stack?.close();
  canary?.close();
  rmSync(dir, { recursive: true, force: true });
});

const at = (target = 'web') => ['-o', `Port=${broker.port}`, '-o', `User=root@${target}`];
const f = (name: string) => join(dir, name);

describe('a shell without a pty is judged line by line from stdin', () => {
  it('ssh -T with a script on stdin: the denied line does not run, the lines around it do', async () => {
    const script = `touch ${f('t-before')}\ntouch ${f('x-forbidden-T')}\ntouch ${f('t-after')}\necho done-$((6*7))\n`;
    const r = await runOpenSsh('ssh', token, [...at(), '-T', '127.0.0.1'], script);
    expect(existsSync(f('x-forbidden-T'))).toBe(false);
    expect(existsSync(f('t-before'))).toBe(true);
    expect(existsSync(f('t-after'))).toBe(true);
    expect(r.stdout).toContain('done-42');
    expect(r.stderr).toContain('[pam] denied: Forbidden marker.');
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.shell' && e.pty === false && e.stdin === 'judged-by-line')).toBe(true);
    expect(audit.some((e) => e.type === 'ssh.command.denied' && e.via === 'stdin' && String(e.command).includes('x-forbidden-T'))).toBe(true);
  });

  it('a command split over lines (continuation, open quote) is judged whole', async () => {
    const script = `touch ${f('x-forb')}\\\nidden-cont\ntouch '${f('x-forbidden-q')}\n'\ntouch ${f('t-cont-ok')}\n`;
    const r = await runOpenSsh('ssh', token, [...at(), '-T', '127.0.0.1'], script);
    expect(existsSync(f('x-forbidden-cont'))).toBe(false);
    expect(existsSync(f('x-forbidden-q\n'))).toBe(false);
    expect(existsSync(f('t-cont-ok'))).toBe(true);
    expect(r.stderr.match(/\[pam\] denied: Forbidden marker\./g)?.length).toBe(2);
  });

  it('the last line without a newline is judged at EOF; an exec of a bare shell (`ssh host bash`) is gated too', async () => {
    await runOpenSsh('ssh', token, [...at(), '-T', '127.0.0.1'], `touch ${f('t-eof-ok')}\ntouch ${f('x-forbidden-eof')}`);
    expect(existsSync(f('x-forbidden-eof'))).toBe(false);
    expect(existsSync(f('t-eof-ok'))).toBe(true);
    const r = await runOpenSsh('ssh', token, [...at(), '127.0.0.1', 'bash'], `touch ${f('x-forbidden-bash')}\ntouch ${f('t-bash-ok')}\n`);
    expect(existsSync(f('x-forbidden-bash'))).toBe(false);
    expect(existsSync(f('t-bash-ok'))).toBe(true);
    expect(r.stderr).toContain('[pam] denied: Forbidden marker.');
    await runOpenSsh('ssh', token, [...at(), '127.0.0.1', 'cat | sh -s'], `touch ${f('x-forbidden-pipe')}\ntouch ${f('t-pipe-ok')}\n`);
    expect(existsSync(f('x-forbidden-pipe'))).toBe(false);
    expect(existsSync(f('t-pipe-ok'))).toBe(true);
  });

  it('allow-list target: only allowed lines of a stdin script run', async () => {
    const r = await runOpenSsh('ssh', token, [...at('strict'), '-T', '127.0.0.1'], `touch ${f('t-strict-ok')}\nmkdir ${f('x-strict-dir')}\necho strict-done\n`);
    expect(existsSync(f('t-strict-ok'))).toBe(true);
    expect(existsSync(f('x-strict-dir'))).toBe(false);
    expect(r.stdout).toContain('strict-done');
    expect(r.stderr).toContain('[pam] denied:');
  });
});

describe('every subsystem request goes through the policy', () => {
  it('ssh -s to a subsystem the target defines: denied by a rule, it never runs; another runs', async () => {
    const denied = await runOpenSsh('ssh', token, [...at(), '-s', '127.0.0.1', 'touchsub']);
    expect(denied.code).not.toBe(0);
    expect(existsSync(f('x-subsystem-ran'))).toBe(false);
    const ok = await runOpenSsh('ssh', token, [...at(), '-s', '127.0.0.1', 'echosub']);
    expect(ok.stdout).toContain('echosub-ran');
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.subsystem.denied' && e.name === 'touchsub' && e.rule === 'no-touch-subsystem')).toBe(true);
    expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'subsystem' && e.destination === 'touchsub')).toBe(true);
  });

  it('an unknown subsystem follows the target default: refused on an allow-list target', async () => {
    const r = await runOpenSsh('ssh', token, [...at('strict'), '-s', '127.0.0.1', 'echosub']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('echosub-ran');
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.subsystem.denied' && e.name === 'echosub' && String(e.why).length > 0)).toBe(true);
  });
});

const strip = (s: string) => s.replace(/\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\x1b[=>78]/g, '');
const SHELL = `exec env PS1='$ ' HISTFILE=/dev/null TERM=xterm bash --norc --noprofile -i`;

/** An interactive bash behind a pty through the proxy (ssh2 client). */
class Pty {
  out = '';
  private mark = 0;
  private constructor(readonly client: ssh2.Client, readonly ch: ssh2.ClientChannel) {
    ch.on('data', (d: Buffer) => (this.out += d.toString()));
    ch.stderr.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  static async open(): Promise<Pty> {
    const password = await cp.token('alice');
    const client = await new Promise<ssh2.Client>((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c)).once('error', reject);
      c.connect({ host: '127.0.0.1', port: broker.port, username: 'root@web', password, readyTimeout: 20_000 });
    });
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell({ cols: 120, rows: 40, term: 'xterm' }, (err, s) => (err ? reject(err) : resolve(s))));
    const p = new Pty(client, ch);
    await p.send(`${SHELL}\r`);
    return p;
  }

  get seen(): string {
    return strip(this.out.slice(this.mark));
  }

  async send(keys: string, until: string | RegExp = /\$ $/): Promise<string> {
    this.mark = this.out.length;
    this.ch.write(keys);
    await waitFor(() => (typeof until === 'string' ? this.seen.includes(until) : until.test(this.seen)), `output after ${JSON.stringify(keys)}`, 1600)
      .catch((err: Error) => { throw new Error(`${err.message}; saw ${JSON.stringify(this.seen.slice(-300))}`); });
    return this.seen;
  }

  close(): void {
    this.client.end();
  }
}

describe('terminal modes never switch the gate off', () => {
  it('an alternate-screen switch printed at the prompt earns no trust: the next forbidden line is still denied', async () => {
    const sh = await Pty.open();
    try {
      await sh.send(`printf '\\033[?1049h'\r`);
      const seen = await sh.send(`touch ${f('x-forbidden-esc')}\r`, '[pam] denied: Forbidden marker.');
      expect(seen).toContain('[pam] denied');
      await sh.send(`touch ${f('t-esc-ok')}\r`);
      await waitFor(() => existsSync(f('t-esc-ok')), 'allowed touch ran');
      expect(existsSync(f('x-forbidden-esc'))).toBe(false);
      const audit = await cp.audit();
      expect(audit.some((e) => e.type === 'ssh.screen' && e.mode === 'alternate' && e.judged === true && e.owner === undefined)).toBe(true);
    } finally {
      sh.close();
    }
  });

  it('vim, less and top still work; after they exit, lines are judged again', async () => {
    const sh = await Pty.open();
    try {
      // vim: a line with a forbidden word typed as text is the editor's, not the shell's.
      await sh.send(`vim -u NONE -N ${f('vim-file')}\r`, /~/);
      await sh.send(`itouch x-forbidden in a file\r\x1b:wq\r`, /\$ $/);
      expect(readFileSync(f('vim-file'), 'utf8')).toBe('touch x-forbidden in a file\n\n');
      await sh.send(`less /etc/hostname\r`, /\(END\)|hostname|:/);
      await sh.send('q', /\$ $/);
      // top draws on the normal screen here (no alternate screen): its quit key must not confuse the next line.
      await sh.send('top -d 1\r', /load average|Tasks/);
      await sh.send('q', /\$ $/);
      await sh.send('htop\r', /F10|Quit|CPU/);
      await sh.send('q', /\$ $/);
      await sh.send(`touch ${f('x-forbidden-after-vim')}\r`, '[pam] denied: Forbidden marker.');
      await sh.send(`touch ${f('t-after-vim')}\r`);
      await waitFor(() => existsSync(f('t-after-vim')), 'allowed touch ran');
      expect(existsSync(f('x-forbidden-after-vim'))).toBe(false);
      const audit = await cp.audit();
      expect(audit.some((e) => e.type === 'ssh.screen' && e.mode === 'alternate' && e.owner === 'vim')).toBe(true);
      expect(audit.some((e) => e.type === 'ssh.screen' && e.mode === 'alternate' && e.owner === 'less')).toBe(true);
      expect(audit.some((e) => e.type === 'ssh.screen' && e.mode === 'alternate' && e.owner === 'htop')).toBe(true);
    } finally {
      sh.close();
    }
  });
});

describe('type-ahead and pasted input', () => {
  it('printf LINES | ssh -tt: every allowed line runs in order, the denied one does not, nothing is masked', async () => {
    const script = `touch ${f('t-tt-one')}\ntouch ${f('x-forbidden-tt')}\necho tt-$((6*7))\ntouch ${f('t-tt-two')}\nexit\n`;
    const r = await runOpenSsh('ssh', token, [...at(), '-tt', '127.0.0.1'], script);
    expect(existsSync(f('t-tt-one'))).toBe(true);
    expect(existsSync(f('t-tt-two'))).toBe(true);
    expect(existsSync(f('x-forbidden-tt'))).toBe(false);
    expect(r.stdout).toContain('tt-42');
    expect(r.stdout).toContain('[pam] denied: Forbidden marker.');
    const metas = await cp.deps.recordings.list();
    const casts = await Promise.all(metas.map((m) => readFile(cp.deps.recordings.dataPath(m.id, 'asciicast'), 'utf8').catch(() => '')));
    const cast = casts.find((c) => c.includes('tt-42'));
    expect(cast).toBeDefined();
    const input = cast!.split('\n').slice(1).filter(Boolean).map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'i').map((e) => e[2]).join('');
    expect(input).toContain(`touch ${f('t-tt-one')}`);
    expect(input).toContain('exit');
  });
});

describe('forward destinations are normalised before matching', () => {
  it('numeric, hex, octal, trailing dot, IPv4-mapped IPv6 and a resolved name all meet the deny; the allowed forward still works', async () => {
    const port = (canary.address() as AddressInfo).port;
    const password = await cp.token('alice');
    const client = await new Promise<ssh2.Client>((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c)).once('error', reject);
      c.connect({ host: '127.0.0.1', port: broker.port, username: 'root@web', password, readyTimeout: 20_000 });
    });
    try {
      for (const host of ['2130706433', '0x7f000001', '0177.0.0.1', '127.1', '127.0.0.1.', '::ffff:127.0.0.1', 'LOCALHOST.', 'localhost']) {
        const err = await new Promise<Error | undefined>((resolve) => client.forwardOut('127.0.0.1', 5555, host, port, (e, ch) => { ch?.close(); resolve(e); }));
        expect(err, host).toBeDefined();
      }
      const banner = await new Promise<string>((resolve, reject) => client.forwardOut('127.0.0.1', 5555, '0x7f000001', sshd.port, (err, ch) => {
        if (err) return reject(err);
        ch.once('data', (d: Buffer) => { resolve(d.toString()); ch.close(); });
      }));
      expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
    } finally {
      client.end();
    }
    expect(canaryHits).toBe(0);
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'port-forward' && e.destination === `2130706433:${port}` && e.rule === 'no-canary-port')).toBe(true);
    expect(audit.some((e) => e.type === 'ssh.channel.refused' && e.destination === `localhost:${port}` && e.normalised === `127.0.0.1:${port}`)).toBe(true);
  });
});

describe('secrets typed at a no-echo prompt never rest in clear', () => {
  it('a password typed at a read -s prompt is not in any file under data_dir; the next command runs', async () => {
    const secret = `Typed-${process.pid}-pw`;
    const sh = await Pty.open();
    try {
      await sh.send(`read -s -p 'Password: ' pw\r`, 'Password: ');
      await sh.send(`${secret}\r`, /\$ $/);
      await sh.send(`touch ${f('t-after-pw')}; echo "len=\${#pw}"\r`, /len=\d+/);
      expect(sh.seen).toContain(`len=${secret.length}`);
      await waitFor(() => existsSync(f('t-after-pw')), 'command after the prompt ran');
    } finally {
      sh.close();
    }
    await new Promise((r) => setTimeout(r, 1500));
    const files: string[] = [];
    const walk = async (d: string) => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else if (e.isFile()) files.push(join(d, e.name));
      }
    };
    await walk(cp.dataDir);
    const hits = [];
    for (const p of files) if ((await readFile(p)).includes(secret)) hits.push(p);
    expect(files.length).toBeGreaterThan(0);
    expect(hits).toEqual([]);
  });
});
