import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { globToLike, parseQuery, parseSince, QueryError } from '../../recorder/index/query-text.js';
import { searchRequest } from '../../recorder/index/search-request.js';
import { sessionsRequest } from '../../recorder/index/sessions-request.js';
import { SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';

const dir = mkdtempSync(join(tmpdir(), 'pam-index-q-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A real index with a few documents, to run every generated query against FTS5 itself. */
const store = new SqliteIndexStore(join(dir, 'index.sqlite'));
const meta: RecordingMeta = { id: '0mx5cxr06-a7b17b3b', protocol: 'ssh', user: 'dana', subject: 'dana', login: 'root', target: 'prod-web', format: 'asciicast', start: '2026-12-01T10:00:00.000Z', bytes: 0, status: 'ended' };
store.upsertSession(meta, { denials: 0, commands: 1 });
store.apply(meta.id, [
  { op: 'doc', key: 1, kind: 'output', t: 1, ts: Date.parse(meta.start) + 1000, text: 'AND OR NOT NEAR "quoted" text:col ^start (paren) café naïve 42501 /etc/passwd' },
  { op: 'command', key: 2, t: 2, ts: Date.parse(meta.start) + 2000, via: 'shell', text: 'systemctl stop nginx', name: 'systemctl', verdict: 'deny' },
]);
const hits = (text: string) => store.search({ match: parseQuery(text).match, limit: 10 }).hits.length;

/** Characters FTS5's query grammar gives meaning to, mixed with words and hostile text. */
const hostile = fc.string({
  unit: fc.oneof(
    fc.constantFrom('"', "'", '*', '^', ':', '(', ')', '-', '+', ',', '{', '}', ' ', '\u0000', '\uFFFD', '\uD800', '\uDC00', 'AND', 'OR', 'NOT', 'NEAR', 'NEAR(', ';', '--', 'é'),
    fc.string({ unit: 'grapheme-ascii', maxLength: 8 }),
    fc.string({ unit: 'binary', maxLength: 3 }),
  ),
  maxLength: 60,
});

describe('query text → FTS5', () => {
  it('quotes every word, so operators, columns and quotes are plain text', () => {
    expect(parseQuery('a OR b').match).toBe('"a" AND "OR" AND "b"');
    expect(parseQuery('"systemctl stop" nginx*').match).toBe('"systemctl stop" AND "nginx"*');
    expect(parseQuery('text:passwd').match).toBe('"text passwd"');
    expect(parseQuery('/etc/passwd').match).toBe('"etc passwd"');
    expect(hits('NOT')).toBe(1);
    expect(hits('"quoted"')).toBe(1);
    expect(hits('systemctl stop')).toBe(1);
    expect(hits('"stop systemctl"')).toBe(0);
    expect(hits('cafe')).toBe(1);
    expect(hits('/etc/passwd')).toBe(1);
    expect(hits('nginx OR missing')).toBe(0);
    expect(hits('sys*')).toBe(1);
  });

  it('refuses text with no words, too long, or too many parts, with a message', () => {
    for (const t of ['', '   ', '"', '***', '--', '\uFFFD', '\uD800']) expect(() => parseQuery(t), JSON.stringify(t)).toThrow(QueryError);
    expect(() => parseQuery('x'.repeat(10 * 1024))).toThrow(/longer than/);
    expect(() => parseQuery(Array.from({ length: 17 }, (_, i) => `w${i}`).join(' '))).toThrow(/more than 16/);
  });

  it('any text is a QueryError or an expression FTS5 runs (never a syntax error, never anything but quoted words)', () => {
    fc.assert(fc.property(hostile, (text) => {
      let match: string;
      try {
        match = parseQuery(text).match;
      } catch (err) {
        expect(err).toBeInstanceOf(QueryError);
        return;
      }
      expect(match).toMatch(/^"[\p{L}\p{N}\p{M} ]+"\*?( AND "[\p{L}\p{N}\p{M} ]+"\*?)*$/u);
      store.search({ match, limit: 5 });
    }), { numRuns: 3000 });
  });
});

describe('search and sessions parameters', () => {
  const now = Date.parse('2026-12-08T00:00:00Z');
  const req = (q: string) => searchRequest(new URLSearchParams(q), now).query;

  it('parses the filters', () => {
    expect(req('q=x&user=dana&target=prod-*&protocol=ssh&since=7d&kind=command,sql&verdict=deny&limit=10')).toMatchObject({
      match: '"x"', user: 'dana', target: 'prod-*', protocol: 'ssh', sinceMs: now - 7 * 86400e3, kinds: ['command', 'sql'], verdict: 'deny', limit: 10,
    });
    expect(req('user=dana')).toMatchObject({ kinds: ['command', 'sql'] });
    expect(parseSince('2026-12-01', now)).toBe(Date.parse('2026-12-01'));
    expect(globToLike('prod-*_x%')).toBe('prod-%\\_x\\%');
  });

  it('refuses bad values with a QueryError naming the parameter', () => {
    for (const [q, why] of [
      ['q=x&kind=bogus', /kind/], ['q=x&verdict=maybe', /verdict/], ['q=x&since=yesterday', /duration/], ['q=x&limit=0', /limit/],
      ['q=x&limit=1000', /limit/], ['q=x&cursor=abc', /cursor/], ['kind=output', /"q" is needed/], ['q=x&q=y', /more than once/],
      ['q=x&recording=../../etc', /recording/], ['q=x&kind=output&verdict=deny', /verdict/], [`q=x&user=${'u'.repeat(300)}`, /user/],
      ['q=x&protocol=mysql', /protocol/],
    ] as const) expect(() => req(q), q.slice(0, 40)).toThrow(why);
    expect(() => sessionsRequest(new URLSearchParams('cursor=1; DROP'))).toThrow(/cursor/);
    expect(() => sessionsRequest(new URLSearchParams('protocol=ftp'))).toThrow(/protocol/);
    expect(() => sessionsRequest(new URLSearchParams('from=soon'))).toThrow(/date/);
  });

  it('a glob with LIKE characters matches them literally', () => {
    expect(store.search({ kinds: ['command'], target: 'prod_web', limit: 5 }).hits).toEqual([]);
    expect(store.search({ kinds: ['command'], target: 'prod-%', limit: 5 }).hits).toEqual([]);
    expect(store.search({ kinds: ['command'], target: 'PROD-*', limit: 5 }).hits.length).toBe(1);
  });
});
