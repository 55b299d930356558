/**
 * Paths into an SSH target that used to skip the command policy (issue 11), tried as an
 * attacker would with the OpenSSH client against a real sshd through the proxy. Each case checks
 * AT THE TARGET (this machine's filesystem) that the denied thing did not happen and that the
 * allowed work of the same session did.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { runOpenSsh, startSshd, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import type { Listener } from '../../proxy/broker.types.js';

const dir = `/tmp/pam-enf-${process.pid}-${randomBytes(3).toString('hex')}`;
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;
let token: string;

const rules = `
command_rules:
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
  sshd = await startSshd({ config: [`Subsystem touchsub /usr/bin/touch ${dir}/x-subsystem-ran`, 'Subsystem echosub /bin/echo echosub-ran'] });
  const t = { protocol: 'ssh' as const, host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } } };
  cp = await startControlPlane({ targets: [{ ...t, name: 'web', defaultAction: 'allow' }, { ...t, name: 'strict', defaultAction: 'deny' }], roles: rules });
  await cp.setSecret('web-root', sshd.userKey);
  broker = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'web', 'root');
  await cp.grant('alice', 'strict', 'root');
  token = await cp.token('alice');
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  await sshd?.close();
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
