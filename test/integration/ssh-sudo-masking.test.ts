/**
 * Passwords typed at a REAL `sudo` and `su` prompt (echo off) through `pam serve` (its own
 * process) to a real sshd: they must not rest anywhere in clear (data_dir files: recordings,
 * catalog, audit log, search index; the process log; `pam recordings export` in every format;
 * the search API), while the commands around them are still recorded and indexed. And echo off
 * must not be a way around the command policy: `stty -echo` then a forbidden command is still
 * judged, on a default-allow target by its rule and on a default-deny target by the default.
 *
 * Needs root (a throwaway OS user with a known password and sudo rights is made here and removed
 * afterwards) and sudo (.ci/run installs it); skipped otherwise.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { PROCESS_ROLES, startPamProcess, type PamProcess } from '../helpers/pam-process.js';
import { PLAIN_BASH, PtyShell, stripEscapes } from '../helpers/pty-shell.js';

const canRun = process.getuid?.() === 0 && existsSync('/usr/bin/sudo') && existsSync('/usr/bin/su');
const tag = randomBytes(3).toString('hex');
const osUser = `pamsudo${tag}`;
const osPassword = `Osp-${randomBytes(9).toString('hex')}`;
const sudoers = `/etc/sudoers.d/pam-test-${tag}`;
const dir = `/tmp/pam-sudo-${process.pid}-${tag}`;
const f = (name: string) => join(dir, name);

const RULES = `
command_rules:
  - name: no-forbidden-markers
    protocol: ssh
    match: { command: touch, args_regex: 'x-forbidden' }
    action: deny
    message: "Forbidden marker."
  - name: strict-basics
    protocol: ssh
    targets: [strict]
    match: { command: [exec, env, stty, echo, touch, "true"] }
    action: allow
`;

let sshd: TestSshd;
let pam: PamProcess;
let auditor: string;

beforeAll(async () => {
  if (!canRun) return;
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  execFileSync('useradd', ['-M', '-d', dir, '-s', '/bin/bash', osUser]);
  execFileSync('chpasswd', { input: `${osUser}:${osPassword}\n` });
  writeFileSync(sudoers, `${osUser} ALL=(ALL) ALL\n`, { mode: 0o440 });
  sshd = await startSshd();
  const target = (name: string, action: string) => `  - name: ${name}
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web-root } }
    default_action: ${action}
`;
  pam = await startPamProcess({ roles: PROCESS_ROLES + RULES, extra: (d) => `evidence:
  signing_key_file: "./keys/evidence.key"
  witness: "file://${join(d, 'witness')}"
targets:\n${target('web', 'allow')}${target('strict', 'deny')}` });
  expect((await pam.pam(['secret', 'set', 'web-root'], {}, sshd.userKey)).code).toBe(0);
  await pam.grant('erin', 'web', 'root');
  await pam.grant('erin', 'strict', 'root');
  auditor = await pam.token('audra', 'security');
}, 120_000);

afterAll(async () => {
  await pam?.stop();
  await sshd?.close();
  if (!canRun) return;
  rmSync(sudoers, { force: true });
  try { execFileSync('userdel', [osUser]); } catch { /* not made */ }
  rmSync(dir, { recursive: true, force: true });
});

async function filesUnder(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(d, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...await filesUnder(join(d, e.name)));
    else if (e.isFile()) out.push(join(d, e.name));
  }
  return out;
}

async function search(params: Record<string, string>): Promise<unknown[]> {
  const res = await fetch(`${pam.server}/api/v1/search?${new URLSearchParams(params)}`, { headers: { authorization: `Bearer ${auditor}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { hits: unknown[] }).hits;
}

/** The ended recording whose data file holds `text`. */
async function recordingWith(text: string): Promise<string> {
  const recs = join(pam.dir, 'data', 'recordings');
  return waitFor(async () => {
    for (const m of (await readdir(recs)).filter((n) => n.endsWith('.meta.json'))) {
      const meta = JSON.parse(await readFile(join(recs, m), 'utf8')) as { id: string; status: string };
      if (meta.status !== 'ended') continue;
      const data = await readFile(join(recs, `${meta.id}.cast`), 'utf8').catch(() => '');
      if (data.includes(text)) return meta.id;
    }
    return undefined;
  }, `an ended recording with ${text}`);
}

/** The `i` events of an asciicast recording, concatenated. */
async function typed(id: string): Promise<string> {
  const cast = await readFile(join(pam.dir, 'data', 'recordings', `${id}.cast`), 'utf8');
  return cast.split('\n').slice(1).filter(Boolean).map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'i').map((e) => e[2]).join('');
}

/** Everything a secret must not be in: every file under the process's directory, its log, the exports, the search API. */
async function expectNowhere(secret: string, id: string): Promise<void> {
  const files = await filesUnder(pam.dir);
  for (const name of ['index.sqlite', 'audit.log', `${id}.cast`, `${id}.meta.json`]) expect(files.some((p) => p.endsWith(`/${name}`)), name).toBe(true);
  const hits: string[] = [];
  for (const p of files) if ((await readFile(p)).includes(secret)) hits.push(p);
  expect(hits).toEqual([]);
  expect(pam.log()).not.toContain(secret);
  for (const format of ['asciicast', 'text']) {
    const r = await pam.pam(['recordings', 'export', id, '--format', format], { PAM_TOKEN: auditor });
    expect(r.code, `${format}: ${r.stderr}`).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
    expect(r.stdout, format).not.toContain(secret);
    expect(r.stderr).not.toContain(secret);
  }
  const bundle = join(pam.dir, `bundle-${id}`);
  const ev = await pam.pam(['evidence', 'export', id, '--output', bundle], { PAM_TOKEN: auditor });
  expect(ev.code, ev.stderr).toBe(0);
  const parts = await filesUnder(bundle);
  expect(parts.length).toBeGreaterThan(1);
  for (const p of parts) expect((await readFile(p)).includes(secret), p).toBe(false);
  expect(await search({ q: secret })).toEqual([]);
}

describe.skipIf(!canRun)('passwords at real sudo and su prompts never rest in clear', () => {
  it('sudo (typed key by key) and su (typed in one chunk with its Enter): masked everywhere; the commands around them are recorded and indexed', async () => {
    const sh = await PtyShell.open(pam.ports.ssh, 'root@web', await pam.token('erin', 'dba'));
    const after = `after${tag}sudo`;
    try {
      // su keeps the pty as its controlling terminal only without -c (which starts a new session).
      await sh.send(`su -s /bin/bash ${osUser}\r`);
      await sh.send(`${PLAIN_BASH}\r`);
      expect(await sh.send(`id -un\r`)).toContain(osUser);
      await sh.send(`sudo -k\r`);
      // The real prompt, with echo off.
      expect(await sh.send(`sudo true && echo sudo-ok-$((6*7))\r`, `[sudo] password for ${osUser}:`)).toContain(`[sudo] password for ${osUser}:`);
      await sh.send(osPassword, /^$/, 30);
      // The password reached sudo unchanged: it was accepted.
      expect(await sh.send('\r', /sudo-ok-42[\s\S]*\$ $/)).not.toContain('try again');
      expect(await sh.send(`su -c 'echo su-ok-$((8*8))' ${osUser}\r`, 'Password:')).toContain('Password:');
      expect(await sh.send(`${osPassword}\r`, /su-ok-64[\s\S]*\$ $/)).not.toContain('failure');
      await sh.send(`touch ${f('t-after-sudo')}; echo ${after}\r`, new RegExp(`\\n\\r?${after}`));
      expect(existsSync(f('t-after-sudo'))).toBe(true);
      // The secret never went back to the screen either.
      expect(stripEscapes(sh.out)).not.toContain(osPassword);
    } finally {
      await sh.close();
    }
    const id = await recordingWith(`echo ${after}`);
    // What was typed: the commands as typed, each password as one `*` per character, twice.
    const input = await typed(id);
    expect(input).toContain('sudo true && echo sudo-ok-$((6*7))');
    expect(input).toContain(`touch ${f('t-after-sudo')}; echo ${after}`);
    expect(input.split('*'.repeat(osPassword.length)).length - 1).toBeGreaterThanOrEqual(2);
    // The search index has the session (its command after the password), and not the password.
    await waitFor(async () => (await search({ q: after, kind: 'command', recording: id })).length > 0, 'the command after the password in the index');
    await expectNowhere(osPassword, id);
  });
});
