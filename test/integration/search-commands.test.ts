/**
 * Command events with verdict AND rule, from real sessions through the proxy (issue 15): every
 * line the Enter gate, the stdin gate or the exec policy judged is one event with the deciding
 * rule (`default_action` when none matched), so "who ran `systemctl stop` on prod-* last week"
 * is one query that names the rule. Also the stdin text of a channel no gate read (`input`).
 * `startProxy` (index worker included) in front of a real OpenSSH sshd; clients by ssh2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientChannel } from 'ssh2';
import { startProxy, type RunningProxy } from '../../app/serve.js';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { testConfig } from '../helpers/control-plane.js';
import type { SearchHit } from '../../recorder/index/index.types.js';
import { SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import { Indexer } from '../../recorder/index/indexer.js';
import { rawSummary } from '../../recorder/raw-reader.js';

const ROLES = `roles:
  - name: admin
    groups: [admins]
    can_request:
      - { targets: ["*"], logins: ["*"], max_duration: 8h }
  - name: security
    groups: [security]
    can_approve: [admin]
    can_audit: true
`;
const RULES = `command_rules:
  - name: web-stop-ok
    protocol: ssh
    targets: ["prod-web-*"]
    match: { command: systemctl, args_regex: '^stop\\b' }
    action: allow
  - name: no-db-stop
    protocol: ssh
    targets: ["prod-db-*"]
    match: { command: systemctl, args_regex: '^stop\\b' }
    action: deny
    message: "Stopping database services needs a change ticket."
`;
/** The target's systemctl is never run: a shell function stands in for it. */
const FAKE = `systemctl() { echo "fake-systemctl $*"; }`;

let sshd: TestSshd;
let proxy: RunningProxy;
let dataDir: string;
let base: string;
let auditor: string;

const token = (user: string, groups: string[]) => proxy.cp.dev!.issue(user, groups);

async function grant(user: string, target: string): Promise<void> {
  const who = await proxy.cp.identity.verify(await token(user, ['admins']));
  const approver = await proxy.cp.identity.verify(await token('grant-bot', ['security']));
  const req = await proxy.cp.access.request(who, { target, login: 'root', durationMs: 3600_000, reason: 'index test' });
  await proxy.cp.access.approve(approver, req.id, 'ok');
}

async function search(params: Record<string, string>): Promise<SearchHit[]> {
  const res = await fetch(`${base}/api/v1/search?${new URLSearchParams(params)}`, { headers: { authorization: `Bearer ${auditor}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { hits: SearchHit[] }).hits;
}

async function connect(user: string, target: string): Promise<Client> {
  const c = new Client();
  const tok = await token(user, ['admins']);
  await new Promise<void>((resolve, reject) => {
    c.once('ready', () => resolve());
    c.once('error', reject);
    c.connect({ host: '127.0.0.1', port: proxy.ssh!.port, username: `root@${target}`, password: tok, hostVerifier: () => true, readyTimeout: 15_000 });
  });
  return c;
}

/** A pty shell: each line typed after the prompt, the next once `until` shows. */
async function ptySession(user: string, target: string, lines: [string, string | RegExp][]): Promise<string> {
  const client = await connect(user, target);
  let recording = '';
  try {
    const ch = await new Promise<ClientChannel>((resolve, reject) => client.shell({ term: 'xterm', cols: 120, rows: 30 }, (e, c) => (e ? reject(e) : resolve(c))));
    let seen = '';
    ch.on('data', (d: Buffer) => { seen += d.toString(); });
    await waitFor(() => /[$#] $/.test(seen), 'prompt');
    recording = proxy.cp.sessions.list().find((s) => s.user === user && s.target === target)!.recordingId;
    for (const [line, until] of lines) {
      const from = seen.length;
      ch.write(`${line}\r`);
      await waitFor(() => (typeof until === 'string' ? seen.slice(from).includes(until) : until.test(seen.slice(from))) && /[$#] $/.test(seen), `after ${line}`);
    }
    ch.write('exit\r');
    await new Promise((r) => ch.once('close', r));
  } finally {
    client.end();
  }
  await waitFor(async () => (await proxy.cp.recordings.get(recording))?.status === 'ended', 'recording sealed');
  return recording;
}

/** A channel without a pty: `stdin` written whole, then EOF; resolves with stdout at close. */
async function noPty(client: Client, open: (cb: (err: Error | undefined, ch: ClientChannel) => void) => void, stdin: string): Promise<string> {
  const ch = await new Promise<ClientChannel>((resolve, reject) => open((e, c) => (e ? reject(e) : resolve(c))));
  let out = '';
  ch.on('data', (d: Buffer) => { out += d.toString(); });
  ch.stderr.on('data', () => {});
  ch.end(stdin);
  await new Promise((r) => ch.once('close', r));
  return out;
}

beforeAll(async () => {
  sshd = await startSshd();
  dataDir = await mkdtemp(join(tmpdir(), 'pam-index-cmd-'));
  const policiesDir = join(dataDir, 'policies');
  await mkdir(policiesDir);
  await writeFile(join(policiesDir, 'roles.yaml'), ROLES);
  await writeFile(join(policiesDir, 'rules.yaml'), RULES);
  const ssh = (name: string) => ({ name, protocol: 'ssh' as const, host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' as const });
  proxy = await startProxy(testConfig(dataDir, policiesDir, [ssh('prod-web-1'), ssh('prod-db-1'), ssh('stage-web-1')]));
  base = `http://127.0.0.1:${proxy.http.port}`;
  auditor = await token('sam', ['security']);
  await proxy.cp.vault.set('web-root', Buffer.from(sshd.userKey));
  await grant('dana', 'prod-web-1');
  await grant('dana', 'stage-web-1');
  await grant('erin', 'prod-db-1');
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await sshd?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('command events carry verdict and rule, allowed lines too', () => {
  let danaPty: string;
  let danaStdin: string;
  let erinPty: string;

  it('pty shells, a no-pty shell judged by the stdin gate and exec requests, through the proxy', async () => {
    danaPty = await ptySession('dana', 'prod-web-1', [[FAKE, ''], ['systemctl stop nginx', 'fake-systemctl stop nginx'], ['echo dana-was-here', 'dana-was-here']]);
    erinPty = await ptySession('erin', 'prod-db-1', [[FAKE, ''], ['systemctl stop postgresql', 'change ticket']]);
    await ptySession('dana', 'stage-web-1', [[FAKE, ''], ['systemctl stop nginx', 'fake-systemctl stop nginx']]);
    // `ssh -T prod-web-1` with a script on stdin: the stdin gate judges each line.
    const c = await connect('dana', 'prod-web-1');
    try {
      const out = await noPty(c, (cb) => c.shell(false, cb), `${FAKE}\nsystemctl stop cron\necho stdin-gate-done\n`);
      expect(out).toContain('fake-systemctl stop cron');
      expect(out).toContain('stdin-gate-done');
      // An exec reading text from stdin (no shell: no gate): its stdin is `input` text.
      const got = await noPty(c, (cb) => c.exec('cat > /dev/null; echo exec-read-it', cb), 'the llama-in-the-pipe line\n');
      expect(got).toContain('exec-read-it');
    } finally {
      c.end();
    }
    danaStdin = await waitFor(async () => (await proxy.cp.recordings.list()).find((m) => m.format === 'raw' && m.status === 'ended')?.id, 'raw recording sealed');
  });

  it('"who ran systemctl stop on prod-* last week" is one query, and each hit names the rule', async () => {
    const q = { q: 'systemctl stop', kind: 'command', target: 'prod-*', since: '7d' };
    const hits = await waitFor(async () => {
      const h = await search(q);
      return h.length >= 3 ? h : undefined;
    }, 'three command events', 800);
    const rows = hits.map((h) => [h.user, h.target, h.command!.via, h.command!.text, h.command!.verdict, h.command!.rule]).sort();
    expect(rows).toEqual([
      ['dana', 'prod-web-1', 'shell', 'systemctl stop cron', 'allow', 'web-stop-ok'],
      ['dana', 'prod-web-1', 'shell', 'systemctl stop nginx', 'allow', 'web-stop-ok'],
      ['erin', 'prod-db-1', 'shell', 'systemctl stop postgresql', 'deny', 'no-db-stop'],
    ]);
    // Each event once: the typed Enter after the gate's verdict is not a second event.
    expect(new Set(hits.map((h) => `${h.recording}:${h.t}`)).size).toBe(hits.length);
    // Filters narrow: verdict, user, time, and the stage target is outside prod-*.
    expect((await search({ ...q, verdict: 'allow' })).map((h) => h.command!.text).sort()).toEqual(['systemctl stop cron', 'systemctl stop nginx']);
    expect((await search({ ...q, user: 'erin' })).map((h) => h.command!.rule)).toEqual(['no-db-stop']);
    expect(await search({ ...q, until: '7d' })).toEqual([]);
    const stage = await search({ q: 'systemctl stop', kind: 'command', target: 'stage-*' });
    expect(stage.map((h) => [h.command!.verdict, h.command!.rule])).toEqual([['allow', 'default_action']]);
  });

  it('default-allow and rule-allow are told apart; exec requests carry their rule and exit status', async () => {
    const echo = (await search({ q: 'dana-was-here', kind: 'command' }))[0]!;
    expect(echo.command).toMatchObject({ via: 'shell', verdict: 'allow', rule: 'default_action' });
    const ex = (await search({ q: 'exec-read-it', kind: 'command' }))[0]!;
    expect(ex.command).toMatchObject({ via: 'exec', verdict: 'allow', rule: 'default_action', outcome: 'exit 0' });
    const gated = (await search({ q: 'stdin-gate-done', kind: 'command' }))[0]!;
    expect(gated).toMatchObject({ recording: danaStdin, user: 'dana' });
    expect(gated.command).toMatchObject({ via: 'shell', verdict: 'allow', rule: 'default_action' });
    // The allowed lines are command events only: no second hit from their verdict markers.
    expect((await search({ q: 'dana-was-here', kind: 'marker' }))).toEqual([]);
  });

  it('the stdin text of a channel no gate read is indexed as input; judged stdin lines are not indexed twice', async () => {
    const input = await search({ q: 'llama-in-the-pipe' });
    expect(input.map((h) => [h.kind, h.recording, h.user, h.target])).toEqual([['input', danaStdin, 'dana', 'prod-web-1']]);
    expect((await search({ q: 'llama', kind: 'input' })).length).toBe(1);
    expect((await search({ q: 'stdin-gate-done', kind: 'input' }))).toEqual([]);
  });

  it('each hit links to the moment of its verdict in the recording', async () => {
    // pty: the `allowed` marker's time in the asciicast file is the event's moment.
    const cast = (await readFile(join(dataDir, 'recordings', `${danaPty}.cast`), 'utf8')).trim().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    const marker = cast.find((e) => e[1] === 'm' && e[2] === 'allowed (web-stop-ok): systemctl stop nginx')!;
    expect(marker).toBeDefined();
    const hit = (await search({ q: 'systemctl stop nginx', kind: 'command', target: 'prod-web-1' })).find((h) => h.recording === danaPty)!;
    expect(hit.t).toBeCloseTo(marker[0], 3);
    // The output of the command comes after that moment, the prompt's line before it.
    const printed = cast.find((e) => e[1] === 'o' && e[2].includes('fake-systemctl stop nginx'))!;
    expect(printed[0]).toBeGreaterThanOrEqual(hit.t);
    const denied = (await search({ q: 'postgresql', kind: 'command' }))[0]!;
    expect(denied.recording).toBe(erinPty);
    // Raw (no pty): the marker frame's time.
    const raw = await rawSummary(join(dataDir, 'recordings', `${danaStdin}.raw`));
    const m = raw.markers.find((x) => x.label === 'allowed (web-stop-ok): systemctl stop cron')!;
    const cron = (await search({ q: 'cron', kind: 'command' }))[0]!;
    expect(cron.t).toBeCloseTo(m.t, 3);
  });

  it('an index rebuilt from these recordings equals the one built live', async () => {
    await waitFor(() => proxy.index!.status().state === 'ready', 'index ready');
    await new Promise((r) => setTimeout(r, 1200));
    const live = new SqliteIndexStore(join(dataDir, 'index.sqlite'), { readonly: true });
    const liveDump = live.dump();
    live.close();
    const copy = new SqliteIndexStore(join(dataDir, 'rebuilt.sqlite'));
    await new Indexer(copy, join(dataDir, 'recordings')).sync({ all: true });
    const rebuilt = copy.dump();
    copy.close();
    expect(liveDump.docs.some((d) => (d as { rule?: string }).rule === 'web-stop-ok')).toBe(true);
    expect(rebuilt).toEqual(liveDump);
  });
});
