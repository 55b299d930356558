/**
 * The search index against real sessions: `startProxy` (the index worker included) in front of
 * a real OpenSSH sshd and the machine's PostgreSQL, sessions by ssh2 and node-postgres, search
 * through the HTTP API. Hits point at the right recording and moment, filters narrow, a rebuilt
 * index equals the live one, and a damaged or deleted index file is rebuilt at start-up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ssh2';
import pg from 'pg';
import { startProxy, type RunningProxy } from '../../app/serve.js';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { exec } from '../helpers/ssh-exec.js';
import { testConfig } from '../helpers/control-plane.js';
import type { Config } from '../../config/config.types.js';
import type { SearchHit } from '../../recorder/index/index.types.js';
import { SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import Database from 'better-sqlite3';
import { Indexer } from '../../recorder/index/indexer.js';

const ROLE = `pamix_${process.pid}`;
const PW = `pw-${process.pid}-ix`;
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
  - name: no-stop
    protocol: ssh
    match: { regex: 'systemctl\\s+stop' }
    action: deny
    message: "Stopping services is blocked."
  - name: no-drop
    protocol: postgres
    match: { statements: [DropStmt] }
    action: deny
    message: "DROP is blocked."
`;

const admin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]).toString();

let sshd: TestSshd;
let proxy: RunningProxy;
let config: Config;
let dataDir: string;
let base: string;
let auditorToken: string;

async function token(user: string, groups: string[]): Promise<string> {
  return proxy.cp.dev!.issue(user, groups);
}

async function grant(user: string, target: string, login: string): Promise<void> {
  const who = await proxy.cp.identity.verify(await token(user, ['admins']));
  const approver = await proxy.cp.identity.verify(await token('grant-bot', ['security']));
  const req = await proxy.cp.access.request(who, { target, login, durationMs: 3600_000, reason: 'index test' });
  await proxy.cp.access.approve(approver, req.id, 'ok');
}

async function api(path: string, tok = auditorToken): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${tok}` } });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

const search = async (params: Record<string, string>) => {
  const r = await api(`/api/v1/search?${new URLSearchParams(params)}`);
  expect(r.status).toBe(200);
  return r.body as { hits: SearchHit[]; next_cursor: string | null; index: { state: string } };
};

async function sshConnect(user: string): Promise<Client> {
  const c = new Client();
  const tok = await token(user, ['admins']);
  await new Promise<void>((resolve, reject) => {
    c.once('ready', () => resolve());
    c.once('error', reject);
    c.connect({ host: '127.0.0.1', port: proxy.ssh!.port, username: 'root@web-prod', password: tok, hostVerifier: () => true, readyTimeout: 15_000 });
  });
  return c;
}

/** Runs the `pam` CLI as a user would, against this proxy and data_dir. */
function pam(args: string[], tok: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['bin/pam.js', ...args], { env: { ...process.env, PAM_SERVER: base, PAM_TOKEN: tok }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function start(): Promise<void> {
  proxy = await startProxy(config);
  base = `http://127.0.0.1:${proxy.http.port}`;
  auditorToken = await token('sam', ['security']);
}

beforeAll(async () => {
  sshd = await startSshd();
  admin(`DROP ROLE IF EXISTS ${ROLE}; SET password_encryption='scram-sha-256'; CREATE ROLE ${ROLE} LOGIN PASSWORD '${PW}'`);
  dataDir = await mkdtemp(join(tmpdir(), 'pam-index-'));
  const policiesDir = join(dataDir, 'policies');
  await mkdir(policiesDir);
  await writeFile(join(policiesDir, 'roles.yaml'), ROLES);
  await writeFile(join(policiesDir, 'rules.yaml'), RULES);
  config = testConfig(dataDir, policiesDir, [
    { name: 'web-prod', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' },
    { name: 'db-stage', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'disable', logins: { [ROLE]: { secret: 'db-pw' } }, defaultAction: 'allow' },
  ]);
  await start();
  await proxy.cp.vault.set('web-root', Buffer.from(sshd.userKey));
  await proxy.cp.vault.set('db-pw', Buffer.from(PW));
  await grant('dana', 'web-prod', 'root');
  await grant('erin', 'db-stage', ROLE);
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await sshd?.close();
  try { admin(`DROP ROLE IF EXISTS ${ROLE}`); } catch { /* best effort */ }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('search index over real sessions', () => {
  let sshRecording: string;
  let pgRecording: string;

  it('finds a word printed in a live SSH session while the session still runs, with the moment', async () => {
    const client = await sshConnect('dana');
    try {
      const ch = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => {
        client.shell({ term: 'xterm', cols: 100, rows: 24 }, (err, c) => (err ? reject(err) : resolve(c)));
      });
      let seen = '';
      ch.on('data', (d: Buffer) => { seen += d.toString(); });
      await waitFor(() => /[$#] $/.test(seen), 'prompt');
      ch.write('echo zebra-$((6*7))-quokka\r');
      await waitFor(() => seen.includes('zebra-42-quokka'), 'output');
      // Searchable while the session is live (the worker reads the growing file).
      // The echo of the typed line matches too; wait for the printed result.
      const live = await waitFor(async () => (await search({ q: 'quokka', kind: 'output' })).hits.find((h) => h.snippet.includes('zebra-42-quokka')), 'live hit', 800);
      sshRecording = live.recording;
      expect(proxy.cp.sessions.list().some((s) => s.recordingId === live.recording)).toBe(true);
      expect(live).toMatchObject({ user: 'dana', target: 'web-prod', login: 'root', kind: 'output', protocol: 'ssh' });
      expect(live.snippet).toContain('zebra-42-quokka');
      ch.write('systemctl stop nginx\r');
      await waitFor(() => seen.includes('[pam] denied: Stopping services is blocked.'), 'denial');
      ch.write('exit\r');
      await new Promise((r) => ch.once('close', r));
    } finally {
      client.end();
    }
    await waitFor(async () => (await proxy.cp.recordings.get(sshRecording))?.status === 'ended', 'recording ended');
    // The typed command is an event of its own with its verdict.
    const cmd = await waitFor(async () => (await search({ q: 'systemctl stop', kind: 'command' })).hits.find((h) => h.command?.verdict === 'deny'), 'denied command');
    expect(cmd).toMatchObject({ recording: sshRecording, user: 'dana', target: 'web-prod', kind: 'command' });
    expect(cmd.command).toMatchObject({ via: 'shell', text: 'systemctl stop nginx', name: 'systemctl', verdict: 'deny', rule: 'no-stop' });
    expect(cmd.command!.outcome).toContain('Stopping services is blocked.');
    const echo = (await search({ q: 'echo', kind: 'command', user: 'dana' })).hits.find((h) => h.command?.text.includes('zebra'));
    expect(echo?.command?.verdict).toBe('allow');
    // The hit's moment is inside the recording: the echo came before the denial.
    expect(echo!.t).toBeGreaterThanOrEqual(0);
    expect(echo!.t).toBeLessThanOrEqual(cmd.t);
  });

  it('indexes exec requests with their exit status, and SQL statements with tag, SQLSTATE and verdict', async () => {
    const client = await sshConnect('dana');
    try {
      const r = await exec(client, 'echo exec-marmot; exit 3');
      expect(r.code).toBe(3);
    } finally {
      client.end();
    }
    const pgc = new pg.Client({ host: '127.0.0.1', port: proxy.postgres!.port, user: ROLE, database: 'db-stage', password: await token('erin', ['admins']) });
    await pgc.connect();
    try {
      await pgc.query(`SELECT 'pangolin-' || 7 AS x`);
      await expect(pgc.query('DROP TABLE IF EXISTS pangolin_table')).rejects.toThrow(/DROP is blocked/);
    } finally {
      await pgc.end();
    }
    const ex = await waitFor(async () => (await search({ q: 'marmot', kind: 'command' })).hits.find((h) => h.command?.outcome), 'exec hit with its exit status', 800);
    expect(ex.command).toMatchObject({ via: 'exec', verdict: 'allow', outcome: 'exit 3' });
    const sel = await waitFor(async () => {
      const hits = (await search({ q: 'pangolin', kind: 'sql' })).hits;
      return hits.length >= 2 ? hits : undefined;
    }, 'sql hits', 800);
    pgRecording = sel[0]!.recording;
    const drop = sel.find((h) => h.command?.name === 'DROP')!;
    expect(drop).toMatchObject({ user: 'erin', target: 'db-stage', protocol: 'postgres' });
    expect(drop.command).toMatchObject({ verdict: 'deny', rule: 'no-drop' });
    expect(drop.command!.outcome).toContain('42501');
    expect(sel.find((h) => h.command?.name === 'SELECT')!.command).toMatchObject({ verdict: 'allow', outcome: 'SELECT 1' });
    // SQLSTATE is searchable too.
    expect((await search({ q: '42501' })).hits.some((h) => h.recording === pgRecording)).toBe(true);
  });

  it('filters narrow: user, target glob, kind, verdict, time range; without words it lists command events', async () => {
    const denied = await search({ verdict: 'deny' });
    expect(denied.hits.length).toBe(2);
    expect(new Set(denied.hits.map((h) => h.target))).toEqual(new Set(['web-prod', 'db-stage']));
    const danaProd = await search({ user: 'DANA', target: 'web-*', since: '7d' });
    expect(danaProd.hits.length).toBeGreaterThanOrEqual(3);
    expect(danaProd.hits.every((h) => h.user === 'dana' && h.target === 'web-prod' && (h.kind === 'command' || h.kind === 'sql'))).toBe(true);
    expect((await search({ target: 'prod-*' })).hits).toEqual([]);
    expect((await search({ q: 'pangolin', user: 'dana' })).hits).toEqual([]);
    expect((await search({ q: 'pangolin', until: '2000-01-01' })).hits).toEqual([]);
    expect((await search({ q: 'quokka', kind: 'sql' })).hits).toEqual([]);
    // Newest first: the DROP came after the SSH denial.
    expect(denied.hits[0]!.target).toBe('db-stage');
  });

  it('pages with a cursor, no hit twice and none lost', async () => {
    const all = (await search({ limit: '200' })).hits.map((h) => `${h.recording}:${h.t}:${h.command?.text}`);
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof search>> = await search({ limit: '2', ...(cursor ? { cursor } : {}) });
      expect(page.hits.length).toBeLessThanOrEqual(2);
      paged.push(...page.hits.map((h) => `${h.recording}:${h.t}:${h.command?.text}`));
      cursor = page.next_cursor;
    } while (cursor);
    expect(paged).toEqual(all);
    expect(all.length).toBeGreaterThan(4);
  });

  it('bad query text is a 400 or results, never a 500, and FTS syntax in it is plain text', async () => {
    const cases = ['"', '"unclosed phrase', 'a OR b', 'NOT quokka', 'quokka NEAR(x)', 'text:quokka', '^quokka', '(((', '*', '-', "'; DROP TABLE docs; --", 'x'.repeat(10 * 1024), '\u0000quokka', '\uFFFDquokka'];
    for (const q of cases) {
      const r = await api(`/api/v1/search?q=${encodeURIComponent(q)}`);
      expect([200, 400], q.slice(0, 40)).toContain(r.status);
      if (r.status === 400) expect(r.body.error.message).toMatch(/query|characters|words/);
    }
    // Invalid UTF-8 and broken percent-encoding in the URL itself.
    for (const raw of ['%FF%FEquokka', '%E0%A4%A', '%', 'quokka%00']) {
      const r = await api(`/api/v1/search?q=${raw}`);
      expect([200, 400], raw).toContain(r.status);
    }
    // An FTS5 operator is a word: "NOT quokka" needs the word "not" too, so it finds nothing.
    expect((await search({ q: 'NOT quokka' })).hits).toEqual([]);
    expect((await search({ q: 'quokka' })).hits.length).toBeGreaterThan(0);
    // The index survived every one of them.
    expect((await api('/api/v1/search?q=x&limit=0')).status).toBe(400);
    expect((await api('/api/v1/search?q=x&cursor=abc')).status).toBe(400);
    expect((await api('/api/v1/search?q=x&kind=bogus')).status).toBe(400);
    expect((await api('/api/v1/search?q=x&since=yesterday')).status).toBe(400);
    expect((await api('/api/v1/search?kind=output')).status).toBe(400);
  });

  it('needs can_audit, and each search is audited', async () => {
    const r = await api('/api/v1/search?q=quokka', await token('dana', ['admins']));
    expect(r.status).toBe(403);
    const audit = await proxy.cp.audit.read();
    expect(audit.some((e) => e.type === 'recording.search' && e.actor === 'sam' && e.query === 'quokka')).toBe(true);
  });

  it('lists sessions from the index, newest first, paginated, with denials counted', async () => {
    const first = await api('/api/v1/ui/sessions?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.sessions.length).toBe(2);
    const ids: string[] = first.body.sessions.map((s: { id: string }) => s.id);
    const second = await api(`/api/v1/ui/sessions?limit=2&cursor=${first.body.next_cursor}`);
    ids.push(...second.body.sessions.map((s: { id: string }) => s.id));
    const all = (await proxy.cp.recordings.list()).map((m) => m.id);
    expect(ids).toEqual(all.slice(0, ids.length));
    const withDenials = await api('/api/v1/ui/sessions?denials=1');
    expect(withDenials.body.sessions.map((s: { id: string }) => s.id).sort()).toEqual([sshRecording, pgRecording].sort());
    const pgOnly = await api('/api/v1/ui/sessions?protocol=postgres&user=eri');
    expect(pgOnly.body.sessions.every((s: { protocol: string; user: string }) => s.protocol === 'postgres' && s.user === 'erin')).toBe(true);
  });

  it('pam search and pam index rebuild beside the running proxy, a live session left to the proxy', async () => {
    const cfg = join(dataDir, 'cli.yaml');
    await writeFile(cfg, `listen: { http: "127.0.0.1:0" }\ndata_dir: "${dataDir}"\nstore: embedded\npolicies_dir: "${join(dataDir, 'policies')}"\nidentity: { dev: true, audience: "pam-proxy" }\ntargets: []\n`);
    const client = await sshConnect('dana');
    try {
      const ch = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => {
        client.shell({ term: 'xterm', cols: 100, rows: 24 }, (err, c) => (err ? reject(err) : resolve(c)));
      });
      let seen = '';
      ch.on('data', (d: Buffer) => { seen += d.toString(); });
      await waitFor(() => /[$#] $/.test(seen), 'prompt');
      ch.write('echo ocelot-$((2+3))\r');
      await waitFor(async () => (await search({ q: 'ocelot' })).hits.some((h) => h.snippet.includes('ocelot-5')), 'live hit', 800);
      const rebuilt = await pam(['index', 'rebuild', '--config', cfg, '--json'], auditorToken);
      expect(rebuilt.code, rebuilt.stderr).toBe(0);
      const r = JSON.parse(rebuilt.stdout) as { recordings: number; skipped_live: number; proxy_pid: number };
      expect(r).toMatchObject({ skipped_live: 1, proxy_pid: process.pid });
      expect(r.recordings).toBe((await proxy.cp.recordings.list()).length - 1);
      // Nothing lost: the live session and the ended ones are all still found.
      expect((await search({ q: 'ocelot' })).hits.some((h) => h.snippet.includes('ocelot-5'))).toBe(true);
      expect((await search({ q: 'quokka' })).hits.length).toBeGreaterThan(0);
      ch.write('exit\r');
      await new Promise((res) => ch.once('close', res));
    } finally {
      client.end();
    }
    const cli = await pam(['search', 'systemctl', 'stop', '--kind', 'command', '--user', 'dana', '--target', 'web-*', '--since', '7d', '--json'], auditorToken);
    expect(cli.code, cli.stderr).toBe(0);
    const hits = (JSON.parse(cli.stdout) as { hits: SearchHit[] }).hits;
    expect(hits.map((h) => [h.user, h.target, h.command?.text, h.command?.verdict])).toEqual([['dana', 'web-prod', 'systemctl stop nginx', 'deny']]);
    const text = await pam(['search', '--verdict', 'deny'], auditorToken);
    expect(text.stdout).toContain('systemctl stop nginx');
    expect(text.stdout).toContain('DROP TABLE IF EXISTS pangolin_table');
    const pgOnly = await pam(['search', '--verdict', 'deny', '--protocol', 'postgres'], auditorToken);
    expect(pgOnly.stdout).toContain('DROP TABLE IF EXISTS pangolin_table');
    expect(pgOnly.stdout).not.toContain('systemctl stop nginx');
    expect((await pam(['search', '--kind', 'output'], auditorToken)).stderr).toContain('"q" is needed');
    expect((await pam(['search', 'quokka'], await token('dana', ['admins']))).code).toBe(3);
  });

  it('an index rebuilt from the files equals the one built live', async () => {
    // Let the worker settle, then read both indexes.
    await waitFor(() => proxy.index!.status().state === 'ready', 'index ready');
    await new Promise((r) => setTimeout(r, 1200));
    const live = new SqliteIndexStore(join(dataDir, 'index.sqlite'), { readonly: true });
    const liveDump = live.dump();
    live.close();
    const copy = new SqliteIndexStore(join(dataDir, 'rebuilt.sqlite'));
    await new Indexer(copy, join(dataDir, 'recordings')).sync({ all: true });
    const rebuilt = copy.dump();
    copy.close();
    expect(liveDump.docs.length).toBeGreaterThan(10);
    expect(rebuilt).toEqual(liveDump);
  });

  it('a damaged index file is rebuilt at start-up, and a deleted one too', async () => {
    const before = (await search({ q: 'quokka' })).hits;
    await proxy.close();
    const file = join(dataDir, 'index.sqlite');
    // Damage: overwrite everything after the header page with garbage.
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(8192);
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(size - 4096, 0xa5), 0, size - 4096, 4096);
    closeSync(fd);
    await start();
    // The fault fired: the worker's background check found the file damaged and started afresh.
    await waitFor(() => proxy.index!.resets.length === 1, 'reset after the check', 800);
    await waitFor(async () => (await search({ q: 'quokka' })).hits.length === before.length && proxy.index!.status().state === 'ready', 'rebuilt after damage', 1200);
    expect((await search({ q: 'quokka' })).hits).toEqual(before);

    await proxy.close();
    await rm(file, { force: true });
    await rm(`${file}-wal`, { force: true });
    await start();
    expect(existsSync(file)).toBe(true);
    expect(proxy.index!.resets).toEqual([]);
    await waitFor(async () => (await search({ q: 'quokka' })).hits.length === before.length, 'rebuilt after delete', 1200);
    expect((await search({ q: 'quokka' })).hits).toEqual(before);
  });

  it('damage only a search can see (inside FTS5 records) is reported by the reader and rebuilt', async () => {
    const before = (await search({ q: 'quokka' })).hits;
    const db = new Database(join(dataDir, 'index.sqlite'));
    db.unsafeMode(true); // lifts SQLite's defensive mode, which guards FTS5's shadow tables
    // quick_check cannot see this: the pages are fine, FTS5's own records inside them are not.
    db.prepare(`UPDATE docs_fts_data SET block = randomblob(length(block)) WHERE id > 10`).run();
    db.close();
    const first = await api('/api/v1/search?q=quokka');
    // The fault fired: the read failed, the client got a clear 503, never a 500.
    expect(first.status).toBe(503);
    expect(first.body.error.message).toMatch(/rebuilt/);
    await waitFor(() => proxy.index!.resets.some((w) => w.includes('a search read a damaged index')), 'reset by the reader', 800);
    await waitFor(async () => {
      const r = await api('/api/v1/search?q=quokka');
      return r.status === 200 && r.body.hits.length === before.length && proxy.index!.status().state === 'ready';
    }, 'rebuilt after damage seen by a search', 1200);
    expect((await search({ q: 'quokka' })).hits).toEqual(before);
  });
});
