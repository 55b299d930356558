import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { Indexer } from '../../recorder/index/indexer.js';
import { PAGE_SIZE, SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import { parseQuery } from '../../recorder/index/query-text.js';

const root = mkdtempSync(join(tmpdir(), 'pam-index-tick-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(root, `d${n++}`);
  mkdirSync(join(d, 'recordings'), { recursive: true });
  return d;
};

/** The real store, counting the transactions it commits (a batch inside a batch is part of the outer one). */
class CountingStore extends SqliteIndexStore {
  commits = 0;
  private depth = 0;
  override batch<T>(fn: () => T): T {
    if (this.depth === 0) this.commits++;
    this.depth++;
    try {
      return super.batch(fn);
    } finally {
      this.depth--;
    }
  }
}

const start = Date.parse('2026-12-01T10:00:00Z');
let ids = 0;
function meta(format: 'jsonl' | 'asciicast', status: 'live' | 'ended'): RecordingMeta {
  const id = `0mx5cxr${String(ids++).padStart(2, '0')}-a7b17b3c`;
  return { id, protocol: format === 'jsonl' ? 'postgres' : 'ssh', format, user: 'dana', subject: 'dana', login: 'root', target: 'db1', start: new Date(start).toISOString(), bytes: 0, status };
}
const ext = (m: RecordingMeta) => (m.format === 'jsonl' ? 'jsonl' : 'cast');
function create(dir: string, m: RecordingMeta, body = ''): string {
  writeFileSync(join(dir, 'recordings', `${m.id}.meta.json`), JSON.stringify(m));
  const p = join(dir, 'recordings', `${m.id}.${ext(m)}`);
  writeFileSync(p, body);
  return p;
}
const statement = (i: number, sql: string) => `${JSON.stringify({ t: new Date(start + i).toISOString(), type: 'statement', protocol: 'simple', sql, tag: 'SELECT 1', rows: 1, verdict: { action: 'allow' } })}\n`;
const castHeader = `${JSON.stringify({ version: 2, width: 80, height: 24, timestamp: start / 1000 })}\n`;
const out = (t: number, text: string) => `${JSON.stringify([t, 'o', text])}\n`;
const hits = (s: SqliteIndexStore, words: string) => s.search({ match: parseQuery(words).match, limit: 50 }).hits;

describe('the worker tick', () => {
  it('writes what every followed recording gained in one transaction', async () => {
    const dir = fresh();
    const store = new CountingStore(join(dir, 'index.sqlite'));
    const ix = new Indexer(store, join(dir, 'recordings'));
    const ms = Array.from({ length: 6 }, () => meta('jsonl', 'live'));
    const paths = ms.map((m) => create(dir, m));
    for (const m of ms) await ix.onMeta(m);
    store.commits = 0;
    paths.forEach((p, r) => {
      for (let i = 0; i < 50; i++) appendFileSync(p, statement(i, `SELECT balance FROM accounts_${r} WHERE id = ${i}`));
    });
    expect(await ix.tick()).toBe(6 * 50);
    expect(store.commits).toBe(1);
    for (let r = 0; r < 6; r++) expect(hits(store, `accounts_${r}`)).toHaveLength(50);
    // Nothing gained: no transaction at all.
    await ix.tick();
    expect(store.commits).toBe(1);
    store.close();
  });

  it('a new index file has PAGE_SIZE pages and is in WAL mode', () => {
    const dir = fresh();
    const store = new SqliteIndexStore(join(dir, 'index.sqlite'));
    const db = (store as unknown as { db: import('better-sqlite3').Database }).db;
    expect(db.pragma('page_size', { simple: true })).toBe(PAGE_SIZE);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    store.close();
  });

  it('reads at most tickBytes of each recording per tick: a bulk recording cannot hold up another, and is caught up with', async () => {
    const dir = fresh();
    const tickBytes = 64 * 1024;
    const store = new CountingStore(join(dir, 'index.sqlite'));
    const ix = new Indexer(store, join(dir, 'recordings'), { tickBytes });
    const bulk = meta('asciicast', 'live');
    const small = meta('jsonl', 'live');
    const bulkPath = create(dir, bulk, castHeader);
    const smallPath = create(dir, small);
    await ix.onMeta(bulk);
    await ix.onMeta(small);
    const line = `${'QUJD'.repeat(19)}\r\n`;
    let body = '';
    for (let i = 0; i < 200; i++) body += out(i * 0.01, `bulk${i} ${line.repeat(40)}`); // ~630 KiB
    appendFileSync(bulkPath, body + out(3, 'the-last-bulk-word\r\n'));
    appendFileSync(smallPath, statement(1, 'SELECT wombat FROM zoo'));
    const before = ix.bytesRead;
    await ix.tick();
    // The other recording is searchable after one tick; the bulk one is not read through yet.
    expect(hits(store, 'wombat')).toHaveLength(1);
    expect(ix.behind).toBe(true);
    expect(ix.bytesRead - before).toBeLessThanOrEqual(2 * tickBytes);
    expect(hits(store, 'the-last-bulk-word')).toEqual([]);
    let ticks = 1;
    while (ix.behind) {
      await ix.tick();
      ticks++;
    }
    expect(ticks).toBeGreaterThan(8);
    expect(hits(store, 'the-last-bulk-word')).toHaveLength(1);
    expect(hits(store, 'bulk199')).toHaveLength(1);
    store.close();
  });

  it('a recording that ends far behind is finished by the ticks, and equals one read whole', async () => {
    const dir = fresh();
    const store = new SqliteIndexStore(join(dir, 'index.sqlite'));
    const ix = new Indexer(store, join(dir, 'recordings'), { tickBytes: 4096 });
    const m = meta('jsonl', 'live');
    const p = create(dir, m);
    await ix.onMeta(m);
    // One statement longer than a tick's bytes is read whole, not stuck on.
    appendFileSync(p, statement(0, `SELECT '${'x'.repeat(10_000)}' AS long_one`));
    for (let i = 1; i < 300; i++) appendFileSync(p, statement(i, `SELECT ${i} AS numbat_${i}`));
    const ended = { ...m, status: 'ended' as const, end: new Date(start + 1000).toISOString() };
    writeFileSync(join(dir, 'recordings', `${m.id}.meta.json`), JSON.stringify(ended));
    await ix.onMeta(ended);
    expect(ix.following).toEqual([m.id]);
    expect(ix.behind).toBe(true);
    while (ix.behind) await ix.tick();
    expect(ix.following).toEqual([]);
    expect(hits(store, 'long_one')).toHaveLength(1);
    expect(hits(store, 'numbat_299')).toHaveLength(1);
    expect(store.session(m.id)).toMatchObject({ status: 'ended', commands: 300 });
    const whole = new SqliteIndexStore(join(dir, 'whole.sqlite'));
    await new Indexer(whole, join(dir, 'recordings')).sync({ all: true });
    expect(store.dump()).toEqual(whole.dump());
    // The file sizes were recorded: the next start finds nothing stale.
    expect(ix.stale().changed).toEqual([]);
    whole.close();
    store.close();
  });
});
