import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { Indexer } from '../../recorder/index/indexer.js';
import { openIndexFile } from '../../recorder/index/index-file.js';
import { SCHEMA_VERSION, SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import { parseQuery } from '../../recorder/index/query-text.js';

const root = mkdtempSync(join(tmpdir(), 'pam-index-schema-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The tables of schema 2 (until the cost work of issue 15): text inside FTS5, commands in a table of their own. */
const SCHEMA_2 = `
CREATE TABLE info(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE sessions(id TEXT PRIMARY KEY, protocol TEXT NOT NULL, user TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
  start_ms INTEGER NOT NULL, denials INTEGER NOT NULL, commands INTEGER NOT NULL, meta TEXT NOT NULL);
CREATE VIRTUAL TABLE docs_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE docs(rowid INTEGER PRIMARY KEY, recording TEXT NOT NULL, key INTEGER NOT NULL, kind TEXT NOT NULL, t REAL NOT NULL);
CREATE UNIQUE INDEX docs_key ON docs(recording, key);
CREATE TABLE commands(rowid INTEGER PRIMARY KEY, via TEXT NOT NULL, text TEXT NOT NULL, name TEXT NOT NULL,
  verdict TEXT NOT NULL, rule TEXT, outcome TEXT);
CREATE TABLE files(id TEXT PRIMARY KEY, meta_mtime_ms REAL NOT NULL, meta_size INTEGER NOT NULL, data_size INTEGER NOT NULL);
INSERT INTO info(k, v) VALUES ('schema', '2');
`;

const start = Date.parse('2026-12-01T10:00:00Z');
const statement = (i: number, sql: string) => `${JSON.stringify({ t: new Date(start + i).toISOString(), type: 'statement', protocol: 'simple', sql, tag: 'SELECT 1', rows: 1, verdict: { action: 'allow' } })}\n`;

describe('an index file of an older schema', () => {
  it('is started afresh at open, not misread, and the recordings are read into the new one', async () => {
    expect(SCHEMA_VERSION).not.toBe('2');
    const dir = join(root, 'd');
    mkdirSync(join(dir, 'recordings'), { recursive: true });
    const id = '0mx5cxr01-a7b17b3c';
    const meta: RecordingMeta = { id, protocol: 'postgres', format: 'jsonl', user: 'dana', subject: 'dana', login: 'app', target: 'db1', start: new Date(start).toISOString(), bytes: 0, status: 'ended' };
    writeFileSync(join(dir, 'recordings', `${id}.meta.json`), JSON.stringify(meta));
    writeFileSync(join(dir, 'recordings', `${id}.jsonl`), statement(1, 'SELECT * FROM okapi_ledger WHERE id = 7'));
    const file = join(dir, 'index.sqlite');
    // The old file claims to have indexed the recording already (same sizes): only the version tells.
    const old = new Database(file);
    old.exec(SCHEMA_2);
    old.prepare(`INSERT INTO docs_fts(rowid, text) VALUES (1, 'stale words')`).run();
    old.close();
    // A reader refuses it (the proxy's reader then waits for the worker's rebuild).
    expect(() => new SqliteIndexStore(file, { readonly: true })).toThrow(/schema 2/);
    const { store, reset } = openIndexFile(file);
    try {
      expect(reset).toMatch(/schema 2, expected/);
      const done = await new Indexer(store, join(dir, 'recordings')).sync();
      expect(done).toEqual({ done: 1, total: 1 });
      const hits = store.search({ match: parseQuery('okapi_ledger').match, limit: 10 }).hits;
      expect(hits.map((h) => [h.recording, h.command?.text, h.command?.outcome])).toEqual([[id, 'SELECT * FROM okapi_ledger WHERE id = 7', 'SELECT 1']]);
      expect(store.search({ match: parseQuery('stale').match, limit: 10 }).hits).toEqual([]);
    } finally {
      store.close();
    }
  });
});
