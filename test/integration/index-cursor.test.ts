/**
 * The cursors of `GET /api/v1/ui/sessions` and `GET /api/v1/search` through the HTTP API of a
 * real `startProxy` (index worker included), over recordings written by the catalog's own writer:
 * following `next_cursor` sees every row once, the last page says so, and a cursor the server
 * never returned (edited, from the other list, random bytes) is a 400 naming the cursor or a
 * page of what lies before it, never a 500.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxy, type RunningProxy } from '../../app/serve.js';
import { waitFor } from '../helpers/sshd.js';
import { testConfig } from '../helpers/control-plane.js';

const N = 24;
const ROLES = `roles:
  - name: security
    groups: [security]
    can_audit: true
`;
let proxy: RunningProxy;
let dataDir: string;
let base: string;
let tok: string;
let ids: string[];

async function api(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${tok}` } });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

/** Follows next_cursor from the first page; the ids of each page. */
async function walk(path: string, key: 'sessions' | 'hits', params: Record<string, string>): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | null = null;
  do {
    const r = await api(`${path}?${new URLSearchParams({ ...params, ...(cursor ? { cursor } : {}) })}`);
    expect(r.status).toBe(200);
    pages.push(r.body[key].map((x: { id?: string; recording?: string }) => x.id ?? x.recording));
    cursor = r.body.next_cursor;
    expect(pages.length).toBeLessThanOrEqual(N + 1);
  } while (cursor);
  return pages;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pam-cursor-'));
  const policiesDir = join(dataDir, 'policies');
  await mkdir(policiesDir);
  await writeFile(join(policiesDir, 'roles.yaml'), ROLES);
  await writeFile(join(policiesDir, 'rules.yaml'), 'command_rules: []\n');
  proxy = await startProxy(testConfig(dataDir, policiesDir, []));
  base = `http://127.0.0.1:${proxy.http.port}`;
  tok = await proxy.cp.dev!.issue('sam', ['security']);
  for (let i = 0; i < N; i++) {
    const user = i % 2 ? 'erin' : 'frank';
    const w = await proxy.cp.recordings.start('asciicast', { user, subject: user, login: 'root', target: 'web' }, { header: { width: 80, height: 24, env: {}, title: 'cursor' } });
    w.output(`cursorword ${i}\r\n`);
    await w.close('client disconnected');
  }
  ids = (await proxy.cp.recordings.list()).map((m) => m.id);
  await waitFor(async () => (await proxy.index!.search({ match: '"cursorword"', limit: 200 })).hits.length === N, 'indexed', 1200);
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('API cursors', () => {
  it('sessions: next_cursor walks every recording once, newest first; the last page has none, a whole number of pages no empty one after', async () => {
    for (const limit of ['5', '6']) {
      const pages = await walk('/api/v1/ui/sessions', 'sessions', { limit });
      expect(pages.map((p) => p.length)).toEqual(limit === '5' ? [5, 5, 5, 5, 4] : [6, 6, 6, 6]);
      const seen = pages.flat();
      expect(new Set(seen).size).toBe(N);
      expect([...seen].sort()).toEqual([...ids].sort());
      const whole = await api('/api/v1/ui/sessions?limit=100');
      expect(whole.body.sessions.map((s: { id: string }) => s.id)).toEqual(seen);
    }
    const erin = (await walk('/api/v1/ui/sessions', 'sessions', { limit: '5', user: 'erin' })).flat();
    expect(erin.length).toBe(N / 2);
    expect(new Set(erin).size).toBe(N / 2);
  });

  it('search: next_cursor walks every hit once, with the filters; protocol narrows it', async () => {
    const pages = await walk('/api/v1/search', 'hits', { q: 'cursorword', limit: '7' });
    expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 3]);
    expect(pages.flat().sort()).toEqual([...ids].sort());
    const frank = (await walk('/api/v1/search', 'hits', { q: 'cursorword', user: 'frank', limit: '5', protocol: 'ssh' })).flat();
    expect(frank.length).toBe(N / 2);
    expect(new Set(frank).size).toBe(N / 2);
    expect((await api('/api/v1/search?q=cursorword&protocol=postgres')).body.hits).toEqual([]);
    expect((await api('/api/v1/search?q=cursorword&protocol=mysql')).status).toBe(400);
  });

  it('an edited cursor is a 400 naming it; one of the other list too; one past the end an empty last page', async () => {
    const first = await api('/api/v1/ui/sessions?limit=5');
    const hits = await api('/api/v1/search?q=cursorword&limit=5');
    const sessionsCursor: string = first.body.next_cursor;
    const searchCursor: string = hits.body.next_cursor;
    expect(sessionsCursor).toMatch(/^\d+\.[0-9a-z-]+$/);
    expect(searchCursor).toMatch(/^\d+$/);
    const bad = ['abc', '-1', '1.', '.x', `${sessionsCursor}x!`, `${sessionsCursor} OR 1=1`, '1'.repeat(17) + '.a', `1.${'a'.repeat(41)}`, searchCursor, '%00', '１２.a'];
    for (const c of bad) {
      const r = await api(`/api/v1/ui/sessions?cursor=${encodeURIComponent(c)}`);
      expect(r.status, c).toBe(400);
      expect(r.body.error.message).toBe('"cursor" is not one this server returned');
    }
    for (const c of ['abc', '-1', '1e9', '0x10', '1'.repeat(19), sessionsCursor, `${searchCursor};`, '１２']) {
      const r = await api(`/api/v1/search?q=cursorword&cursor=${encodeURIComponent(c)}`);
      expect(r.status, c).toBe(400);
      expect(r.body.error.message).toBe('"cursor" is not one this server returned');
    }
    expect((await api(`/api/v1/search?q=cursorword&cursor=${searchCursor}&cursor=${searchCursor}`)).status).toBe(400);
    const past = await api('/api/v1/ui/sessions?cursor=1.0');
    expect(past).toMatchObject({ status: 200, body: { sessions: [], next_cursor: null } });
    const pastHits = await api('/api/v1/search?q=cursorword&cursor=1');
    expect(pastHits).toMatchObject({ status: 200, body: { hits: [], next_cursor: null } });
    // The largest a cursor may be: everything is before it.
    expect((await api(`/api/v1/search?q=cursorword&cursor=${'9'.repeat(18)}&limit=200`)).body.hits.length).toBe(N);
    expect((await api(`/api/v1/ui/sessions?cursor=${'9'.repeat(16)}.z`)).body.sessions.length).toBe(N);
  });

  it('any cursor text is a 200 or a 400, never a 500; the index still answers after', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(fc.string({ maxLength: 60 }), fc.stringMatching(/^\d{1,20}(\.[0-9a-z-]{0,42})?$/)), async (c) => {
      for (const path of ['/api/v1/ui/sessions?limit=3&cursor=', '/api/v1/search?q=cursorword&limit=3&cursor=']) {
        const r = await api(path + encodeURIComponent(c));
        expect([200, 400], `${path}${c}`).toContain(r.status);
        if (r.status === 400) expect(r.body.error.message).toMatch(/cursor|characters/);
      }
    }), { numRuns: 150 });
    expect((await api('/api/v1/ui/sessions?limit=100')).body.sessions.length).toBe(N);
  });
});
