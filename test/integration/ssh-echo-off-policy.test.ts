/**
 * Echo off (`stty -echo`, `read -s`) is no way around the command policy. Input the target does
 * not echo may be a password, so the proxy never writes its text down, but it is still judged:
 * by its rules and by the target's default. Checked at the target (this machine's filesystem)
 * through the proxy in front of a real sshd, and in every file under data_dir for the secrets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestControlPlane } from '../helpers/control-plane.js';
import { waitFor } from '../helpers/sshd.js';
import { startSshPolicyStack, type SshPolicyStack } from '../helpers/ssh-policy-stack.js';
import { PtyShell } from '../helpers/pty-shell.js';

const dir = `/tmp/pam-noecho-${process.pid}-${randomBytes(3).toString('hex')}`;
const f = (name: string) => join(dir, name);
let stack: SshPolicyStack;
let cp: TestControlPlane;

const RULES = `
command_rules:
  - name: no-forbidden-markers
    protocol: ssh
    match: { command: touch, args_regex: 'x-forbidden' }
    action: deny
    message: "Forbidden marker."
  - name: basics
    protocol: ssh
    targets: [strict, watched, prompts]
    match: { command: [exec, env, bash, stty, echo, touch, read] }
    action: allow
  - name: prompts-ok
    protocol: ssh
    targets: [prompts]
    match: { unechoed: true }
    action: allow
`;

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  stack = await startSshPolicyStack({ targets: { web: 'allow', strict: 'deny', watched: 'alert', prompts: 'deny' }, rules: RULES, user: 'alice' });
  cp = stack.cp;
});

afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

const open = async (target: string) => PtyShell.open(stack.broker.port, `root@${target}`, await cp.token('alice'));

async function filesWith(secret: string): Promise<{ files: number; hits: string[] }> {
  const all: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.isFile()) all.push(join(d, e.name));
    }
  };
  await walk(cp.dataDir);
  const hits: string[] = [];
  for (const p of all) if ((await readFile(p)).includes(secret)) hits.push(p);
  return { files: all.length, hits };
}

describe('echo off does not open a side door in the command policy', () => {
  it('default-allow target: after stty -echo a line a rule denies is still denied and never runs', async () => {
    const sh = await open('web');
    try {
      await sh.send('stty -echo\r');
      const seen = await sh.send(`touch ${f('x-forbidden-noecho')}\r`, '[pam] denied: Forbidden marker.');
      expect(seen).toContain('Forbidden marker.');
      await sh.send(`touch ${f('t-web-after')}\r`);
      await waitFor(() => existsSync(f('t-web-after')), 'the allowed line after it ran');
      expect(existsSync(f('x-forbidden-noecho'))).toBe(false);
    } finally {
      await sh.close();
    }
  });

  it('a decoy printed where the unechoed line would be does not hide it: the keys typed meet the rules too', async () => {
    const sh = await open('web');
    try {
      await sh.send('stty -echo\r');
      // A background job prints a harmless line at the cursor while the real one is typed unseen.
      await sh.send(`(sleep 1; printf 'echo decoy') &\r`);
      sh.ch.write(`touch ${f('x-forbidden-decoy')}`);
      await sh.send('', 'echo decoy');
      const seen = await sh.send('\r');
      await sh.send(`touch ${f('t-after-decoy')}\r`);
      await waitFor(() => existsSync(f('t-after-decoy')), 'the allowed line after it ran');
      expect(existsSync(f('x-forbidden-decoy'))).toBe(false);
      expect(seen).toContain('[pam] denied: Forbidden marker.');
    } finally {
      await sh.close();
    }
  });

  it('default-deny target: after stty -echo a line no rule allows is denied by the default (it used to pass)', async () => {
    const sh = await open('strict');
    try {
      await sh.send('stty -echo\r');
      const seen = await sh.send(`mkdir ${f('x-strict-noecho')}\r`, '[pam] denied:');
      expect(seen).toContain('input typed with echo off is judged as a command');
      // An allowed line typed with echo off still runs; echo back on, and echoed lines are judged as before.
      await sh.send(`touch ${f('t-strict-noecho')}\r`);
      await sh.send('stty echo\r');
      await sh.send(`mkdir ${f('x-strict-echo')}\r`, '[pam] denied:');
      await sh.send(`touch ${f('t-strict-echo')}\r`);
      await waitFor(() => existsSync(f('t-strict-echo')), 'the allowed line ran');
      expect(existsSync(f('t-strict-noecho'))).toBe(true);
      expect(existsSync(f('x-strict-noecho'))).toBe(false);
      expect(existsSync(f('x-strict-echo'))).toBe(false);
    } finally {
      await sh.close();
    }
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'policy.deny' && e.command === '(input not echoed)' && e.rule === 'default_action' && e.target === 'strict')).toBe(true);
  });

  it('default-deny target: a secret at a read -s prompt is refused like any line, and its text is nowhere (not in the denial either)', async () => {
    const secret = `Deny${randomBytes(6).toString('hex')}pw`;
    const sh = await open('strict');
    try {
      await sh.send(`read -s -p 'Password: ' pw\r`, 'Password: ');
      const seen = await sh.send(`${secret}\r`, /\[pam\] denied:[\s\S]*\$ $/);
      expect(seen).not.toContain(secret);
      expect(await sh.send(`echo "len=\${#pw}"\r`, /len=\d+/)).toContain('len=0');
    } finally {
      await sh.close();
    }
    await new Promise((r) => setTimeout(r, 1200));
    const { files, hits } = await filesWith(secret);
    expect(files).toBeGreaterThan(0);
    expect(hits).toEqual([]);
    expect(JSON.stringify(await cp.audit())).not.toContain(secret);
  });

  it('default-alert target: a secret at a read -s prompt goes through, audited as an alert without its text', async () => {
    const secret = `Alert${randomBytes(6).toString('hex')}pw`;
    const sh = await open('watched');
    try {
      await sh.send(`read -s -p 'Password: ' pw\r`, 'Password: ');
      await sh.send(`${secret}\r`);
      expect(await sh.send(`echo "len=\${#pw}"\r`, /len=\d+/)).toContain(`len=${secret.length}`);
    } finally {
      await sh.close();
    }
    await new Promise((r) => setTimeout(r, 1200));
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'policy.alert' && e.command === '(input not echoed)' && e.target === 'watched')).toBe(true);
    expect(JSON.stringify(audit)).not.toContain(secret);
    expect((await filesWith(secret)).hits).toEqual([]);
  });

  it('default-deny target with a `match: { unechoed: true }` allow rule: a secret at a prompt goes through unwritten; a rule still denies after stty -echo', async () => {
    const secret = `Opt${randomBytes(6).toString('hex')}pw`;
    const sh = await open('prompts');
    try {
      await sh.send(`read -s -p 'Password: ' pw\r`, 'Password: ');
      await sh.send(`${secret}\r`);
      expect(await sh.send(`echo "len=\${#pw}"\r`, /len=\d+/)).toContain(`len=${secret.length}`);
      await sh.send('stty -echo\r');
      await sh.send(`touch ${f('x-forbidden-optin')}\r`, '[pam] denied: Forbidden marker.');
      await sh.send(`touch ${f('t-optin')}\r`);
      await waitFor(() => existsSync(f('t-optin')), 'the allowed unechoed line ran');
      expect(existsSync(f('x-forbidden-optin'))).toBe(false);
    } finally {
      await sh.close();
    }
    await new Promise((r) => setTimeout(r, 1200));
    expect((await filesWith(secret)).hits).toEqual([]);
  });
});
