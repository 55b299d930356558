import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { castEvents, castIndex } from '../../recorder/cast-reader.js';
import { queryLogEvents, statementParams, statementRows } from '../../recorder/query-log-reader.js';
import { ReaderCache } from '../../recorder/reader-cache.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { searchRecording } from '../../recorder/search.js';
import { tailRecording } from '../../recorder/tail.js';

const dir = await mkdtemp(join(tmpdir(), 'pam-readers-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;
const at = (name: string) => join(dir, `${n++}-${name}`);
const header = JSON.stringify({ version: 2, width: 80, height: 24, timestamp: 1, env: {}, title: 't' });
const ev = (...e: [number, string, string]) => JSON.stringify(e);
const meta = (format: RecordingMeta['format'], extra: Partial<RecordingMeta> = {}): RecordingMeta => ({
  id: 'r', protocol: format === 'asciicast' ? 'ssh' : 'postgres', user: 'alice', subject: 's', login: 'root', target: 'web', format, start: '', bytes: 0, status: 'ended', ...extra,
});

describe('cast reader', () => {
  it('iterates the events of a file, skipping the header and a torn last line', async () => {
    const path = at('a.cast');
    await writeFile(path, [header, ev(0.1, 'o', 'hi ✓'), ev(0.2, 'i', 'x'), '[0.3, "o", "tor'].join('\n'));
    const all = [];
    for await (const e of castEvents(path)) all.push(e);
    expect(all).toEqual([[0.1, 'o', 'hi ✓'], [0.2, 'i', 'x']]);
    expect((await castIndex(path)).events).toBe(2);
  });

  it('keeps an index in the cache it is given until the file changes', async () => {
    const path = at('b.cast');
    await writeFile(path, [header, ev(1, 'm', 'denied: rm')].join('\n') + '\n');
    const cache = new ReaderCache();
    const first = await castIndex(path, cache);
    expect(await castIndex(path, cache)).toBe(first);
    expect(first.denials).toBe(1);
    await appendFile(path, ev(2, 'm', 'refused: sftp') + '\n');
    const next = await castIndex(path, cache);
    expect(next).not.toBe(first);
    expect(next.denials).toBe(2);
  });
});

describe('query log reader', () => {
  it('numbers statement rows and their parameters the same way, past a torn last line', async () => {
    const path = at('q.jsonl');
    const lines = [
      { t: '2026-01-01T00:00:00.000Z', type: 'start' },
      { t: '2026-01-01T00:00:01.500Z', type: 'statement', sql: 'select $1', params: ['secret-ish'], verdict: { action: 'deny' } },
      { t: '2026-01-01T00:00:02.000Z', type: 'statement', sql: 'select 2', tags: ['SELECT 1'] },
    ].map((l) => JSON.stringify(l));
    await writeFile(path, lines.join('\n') + '\n{"t": "2026');
    const rows = await statementRows(path);
    expect(rows).toMatchObject({ start: '2026-01-01T00:00:00.000Z', denials: 1 });
    expect(rows.rows.map((r) => [r.n, r.offset, r.sql, r.params, r.tag])).toEqual([[2, 1.5, 'select $1', 1, undefined], [3, 2, 'select 2', 0, 'SELECT 1']]);
    expect(await statementParams(path, rows.rows[0]!.n)).toEqual(['secret-ish']);
    expect(await statementParams(path, 99)).toEqual([]);
    let count = 0;
    for await (const _ of queryLogEvents(path)) count++;
    expect(count).toBe(3);
  });
});

describe('search', () => {
  it('finds output split across events and behind escape sequences, typed lines, markers and SQL, up to the limit', async () => {
    const path = at('s.cast');
    await writeFile(path, [header, ev(1, 'o', 'look: nee'), ev(2, 'o', '\x1b[1mdle\x1b[0m here'), ev(3, 'i', 'grep need\x7f\x7f\x7f\x7fneedle\r'), ev(4, 'm', 'exec: NEEDLE'), ev(5, 'o', 'needle again')].join('\n') + '\n');
    const hits = await searchRecording(meta('asciicast'), path, 'needle', 10);
    expect(hits.map((h) => [h.t, h.kind])).toEqual([[2, 'output'], [3, 'typed'], [4, 'marker'], [5, 'output']]);
    expect(hits[1]!.snippet).toBe('grep needle');
    expect(await searchRecording(meta('asciicast'), path, 'needle', 2)).toHaveLength(2);
    const sql = at('s.jsonl');
    await writeFile(sql, [{ t: '2026-01-01T00:00:00Z', type: 'start' }, { t: '2026-01-01T00:00:03Z', type: 'statement', sql: 'SELECT * FROM needles' }].map((l) => JSON.stringify(l)).join('\n') + '\n');
    expect((await searchRecording(meta('jsonl'), sql, 'needle', 5)).map((h) => [h.t, h.kind])).toEqual([[3, 'sql']]);
  });
});

describe('tail', () => {
  it('follows a growing file in whole lines and stops after the session ended', async () => {
    const path = at('t.jsonl');
    let ended = false;
    const blocks: string[] = [];
    const done = (async () => {
      for await (const b of tailRecording(path, { format: 'jsonl', ended: () => ended, pollMs: 10 })) blocks.push(b);
    })();
    // The file appears after the tail started waiting for it.
    await new Promise((r) => setTimeout(r, 50));
    await writeFile(path, '{"a":1}\n{"b":');
    await expect.poll(() => blocks.length).toBe(1);
    expect(blocks[0]).toBe('{"a":1}');
    await appendFile(path, '2}\n');
    await expect.poll(() => blocks.length).toBe(2);
    expect(blocks[1]).toBe('{"b":2}');
    await appendFile(path, '{"c":3}\n');
    ended = true;
    await done;
    expect(blocks.join('\n')).toBe('{"a":1}\n{"b":2}\n{"c":3}');
  });

  it('joins a long recording near its end: the header, then from a line boundary', async () => {
    const path = at('long.cast');
    const lines = [header];
    for (let i = 0; i < 10_000; i++) lines.push(ev(i, 'o', `line ${i} ${'x'.repeat(40)}`));
    await writeFile(path, lines.join('\n') + '\n');
    const blocks: string[] = [];
    for await (const b of tailRecording(path, { format: 'asciicast', ended: () => true })) blocks.push(b);
    expect(blocks[0]).toBe(header);
    const rest = blocks.slice(1).join('\n').split('\n');
    expect(rest.at(-1)).toBe(lines.at(-1));
    expect(rest.length).toBeLessThan(lines.length / 2);
    expect(lines.slice(-rest.length)).toEqual(rest);
  });

  it('stops when its reader goes away, though the session goes on', async () => {
    const path = at('gone.jsonl');
    await writeFile(path, '{"a":1}\n');
    const gone = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const b of tailRecording(path, { format: 'jsonl', ended: () => false, signal: gone.signal, pollMs: 10 })) seen.push(b);
    })();
    await expect.poll(() => seen.length).toBe(1);
    gone.abort();
    await done;
    expect(seen).toEqual(['{"a":1}']);
  });
});
