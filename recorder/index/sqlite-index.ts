import Database from 'better-sqlite3';
import type { RecordingMeta } from '../recording.types.js';
import type { ExtractSummary, IndexedFile, IndexedSession, IndexOp, IndexStore, SearchPage, SearchQuery, SessionPage, SessionQuery } from './index.types.js';
import { searchSql, sessionsSql } from './sqlite-queries.js';

/** Bumped when the schema or the extractors change what is indexed: an older file is rebuilt. */
export const SCHEMA_VERSION = '3';

/**
 * Doc rowids are time-ordered: `ts * ROWID_SPREAD + key % ROWID_SPREAD` (probing upward on a
 * clash), so newest-first is FTS5's native `ORDER BY rowid DESC` and a time range is a rowid
 * range: a common word's first page and a `--since` filter stop early instead of sorting.
 */
export const ROWID_SPREAD = 1024;

/** SQLite page size of a new index file. */
export const PAGE_SIZE = 16384;

/**
 * One row per indexed text in `docs`: output chunks, markers and input with their text; command
 * events (shell lines, exec requests, statements) with their columns too (`via` not null). The
 * FTS5 table is external-content over `docs_text` (the text, and a command's outcome on a line of
 * its own), so the text is stored once and FTS5 keeps only the inverted index; `columnsize = 0`
 * since no query ranks (rows come in rowid order). Schema 2 kept the text a second time inside
 * FTS5 and commands in a table of their own: a third row per statement. Measured with
 * bench/index-cost.ts: see the commit that made schema 3. FTS5's `detail` stays `full`: the
 * search API asks phrases (`"systemctl stop"`), which detail=column or none refuse.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS info(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
  id TEXT PRIMARY KEY, protocol TEXT NOT NULL, user TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
  start_ms INTEGER NOT NULL, denials INTEGER NOT NULL, commands INTEGER NOT NULL, meta TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_start ON sessions(start_ms, id);
CREATE TABLE IF NOT EXISTS docs(rowid INTEGER PRIMARY KEY, recording TEXT NOT NULL, key INTEGER NOT NULL, kind TEXT NOT NULL, t REAL NOT NULL,
  text TEXT NOT NULL, via TEXT, name TEXT, verdict TEXT, rule TEXT, outcome TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS docs_key ON docs(recording, key);
CREATE INDEX IF NOT EXISTS docs_commands ON docs(rowid) WHERE via IS NOT NULL;
CREATE INDEX IF NOT EXISTS docs_verdict ON docs(verdict, rowid) WHERE via IS NOT NULL;
CREATE INDEX IF NOT EXISTS docs_exec ON docs(recording, key) WHERE via = 'exec';
CREATE VIEW IF NOT EXISTS docs_text(id, text) AS SELECT rowid, CASE WHEN outcome IS NULL THEN text ELSE text || char(10) || outcome END FROM docs;
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(text, content = 'docs_text', content_rowid = 'id', columnsize = 0,
  tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS files(id TEXT PRIMARY KEY, meta_mtime_ms REAL NOT NULL, meta_size INTEGER NOT NULL, data_size INTEGER NOT NULL);
`;

export class IndexVersionError extends Error {
  constructor(found: string | undefined) {
    super(`index schema ${found ?? 'missing'}, expected ${SCHEMA_VERSION}`);
    this.name = 'IndexVersionError';
  }
}

/** True for errors that mean the file is damaged or not an index: delete it and rebuild. */
export function isCorruption(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? '';
  return /^SQLITE_(CORRUPT|NOTADB|FORMAT)/.test(code) || err instanceof IndexVersionError;
}

/** The embedded IndexStore: one SQLite file with FTS5 (`data_dir/index.sqlite`), WAL mode. */
export class SqliteIndexStore implements IndexStore {
  private readonly db: Database.Database;
  private readonly st: Record<string, Database.Statement>;

  constructor(readonly path: string, opts: { readonly?: boolean } = {}) {
    this.db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    try {
      this.db.pragma('busy_timeout = 10000');
      if (!opts.readonly) {
        // A new file gets 16 KiB pages (before WAL mode, which fixes the page size): a tick's
        // commit of thousands of rows writes a quarter of the WAL frames 4 KiB pages take (one
        // pwrite per frame header and one per page), and about a fifth less CPU per row, measured.
        // An older file keeps its pages until `pam index rebuild` or a reset starts it afresh.
        if (!this.tableExists('info')) this.db.pragma(`page_size = ${PAGE_SIZE}`);
        this.db.pragma('journal_mode = WAL');
        // The index is rebuilt from the recordings, which are the evidence: WAL with NORMAL
        // syncs only at checkpoints; a lost tail of commits is found stale and read again.
        this.db.pragma('synchronous = NORMAL');
        const version = this.tableExists('info') ? this.version() : undefined;
        if (version !== undefined && version !== SCHEMA_VERSION) throw new IndexVersionError(version);
        this.db.exec(SCHEMA);
        this.db.prepare(`INSERT OR IGNORE INTO info(k, v) VALUES ('schema', ?)`).run(SCHEMA_VERSION);
      } else if (this.version() !== SCHEMA_VERSION) {
        throw new IndexVersionError(this.version());
      }
    } catch (err) {
      this.db.close();
      throw err;
    }
    const p = (sql: string) => this.db.prepare(sql);
    this.st = {
      session: this.db.prepare(`SELECT meta, denials, commands FROM sessions WHERE id = ?`),
      ...(opts.readonly ? {} : {
        upsertSession: p(`INSERT INTO sessions(id, protocol, user, target, status, start_ms, denials, commands, meta) VALUES (@id, @protocol, @user, @target, @status, @start_ms, @denials, @commands, @meta)
          ON CONFLICT(id) DO UPDATE SET protocol = excluded.protocol, user = excluded.user, target = excluded.target, status = excluded.status,
          start_ms = excluded.start_ms, denials = excluded.denials, commands = excluded.commands, meta = excluded.meta`),
        docByKey: p(`SELECT rowid FROM docs WHERE recording = ? AND key = ?`),
        maxKey: p(`SELECT max(key) AS k FROM docs WHERE recording = ?`),
        // A rowid taken (another doc in the same millisecond) is probed upward; a key taken is an error.
        insertDoc: p(`INSERT INTO docs(rowid, recording, key, kind, t, text, via, name, verdict, rule, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT(rowid) DO NOTHING`),
        // External content: FTS5 takes the words to remove from the row as it still is in docs,
        // so this runs before the row changes.
        deleteFts: p(`DELETE FROM docs_fts WHERE rowid = ?`),
        updateDoc: p(`UPDATE docs SET text = ?, via = ?, name = ?, verdict = ?, rule = ?, outcome = ? WHERE rowid = ?`),
        insertFts: p(`INSERT INTO docs_fts(rowid, text) VALUES (?, ?)`),
        forgetFts: p(`DELETE FROM docs_fts WHERE rowid IN (SELECT rowid FROM docs WHERE recording = ?)`),
        forgetDocs: p(`DELETE FROM docs WHERE recording = ?`),
        forgetSession: p(`DELETE FROM sessions WHERE id = ?`),
        forgetFile: p(`DELETE FROM files WHERE id = ?`),
        markFile: p(`INSERT OR REPLACE INTO files(id, meta_mtime_ms, meta_size, data_size) VALUES (?, ?, ?, ?)`),
        file: p(`SELECT id, meta_mtime_ms AS metaMtimeMs, meta_size AS metaSize, data_size AS dataSize FROM files WHERE id = ?`),
        files: p(`SELECT id, meta_mtime_ms AS metaMtimeMs, meta_size AS metaSize, data_size AS dataSize FROM files`),
      }),
    };
  }

  private tableExists(name: string): boolean {
    return !!this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name);
  }

  private version(): string | undefined {
    if (!this.tableExists('info')) return undefined;
    return (this.db.prepare(`SELECT v FROM info WHERE k = 'schema'`).get() as { v: string } | undefined)?.v;
  }

  /**
   * Reads every page (`PRAGMA quick_check`); throws a corruption error when the file is damaged.
   * Damage it cannot see (inside FTS5's own records) shows up when a query reads it: the reader
   * then asks the worker to start afresh (live-index.ts).
   */
  check(): void {
    const rows = this.db.pragma('quick_check(1)') as { quick_check: string }[];
    if (rows[0]?.quick_check !== 'ok') throw Object.assign(new Error(`index damaged: ${rows[0]?.quick_check}`), { code: 'SQLITE_CORRUPT' });
  }

  getInfo(k: string): string | undefined {
    return (this.db.prepare(`SELECT v FROM info WHERE k = ?`).get(k) as { v: string } | undefined)?.v;
  }

  setInfo(k: string, v: string): void {
    this.db.prepare(`INSERT OR REPLACE INTO info(k, v) VALUES (?, ?)`).run(k, v);
  }

  batch<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  upsertSession(meta: RecordingMeta, summary: ExtractSummary): void {
    const startMs = Date.parse(meta.start);
    this.st.upsertSession!.run({
      id: meta.id, protocol: meta.protocol, user: meta.user, target: meta.target, status: meta.status,
      start_ms: Number.isFinite(startMs) ? startMs : 0, denials: summary.denials, commands: summary.commands, meta: JSON.stringify(meta),
    });
  }

  apply(recording: string, ops: IndexOp[]): void {
    // Keys above the recording's highest one have no row yet: no lookup for them (the usual case:
    // a statement, a marker, a closed chunk). Kept per batch only, so another writer (`pam index
    // rebuild`) or a rolled-back batch cannot leave it stale.
    let max = (this.st.maxKey!.get(recording) as { k: number | null }).k ?? 0;
    for (const op of ops) {
      const c = op.op === 'command' ? op : undefined;
      const outcome = c?.outcome ?? null;
      const kind = op.op === 'doc' ? op.kind : op.via === 'sql' ? 'sql' : 'command';
      let rowid = op.key > max ? undefined : (this.st.docByKey!.get(recording, op.key) as { rowid: number } | undefined)?.rowid;
      if (rowid !== undefined) {
        this.st.deleteFts!.run(rowid);
        this.st.updateDoc!.run(op.text, c?.via ?? null, c?.name ?? null, c?.verdict ?? null, c?.rule ?? null, outcome, rowid);
      } else {
        rowid = Math.max(0, op.ts) * ROWID_SPREAD + (op.key % ROWID_SPREAD);
        while (this.st.insertDoc!.run(rowid, recording, op.key, kind, op.t, op.text, c?.via ?? null, c?.name ?? null, c?.verdict ?? null, c?.rule ?? null, outcome).changes === 0) rowid++;
        if (op.key > max) max = op.key;
      }
      // What docs_text gives FTS5 for this row.
      this.st.insertFts!.run(rowid, outcome ? `${op.text}\n${outcome}` : op.text);
    }
  }

  forget(recording: string): void {
    this.st.forgetFts!.run(recording);
    this.st.forgetDocs!.run(recording);
    this.st.forgetSession!.run(recording);
    this.st.forgetFile!.run(recording);
  }

  /** Drops what was indexed from a recording's data file, keeping its session row. */
  forgetData(recording: string): void {
    this.st.forgetFts!.run(recording);
    this.st.forgetDocs!.run(recording);
  }

  markIndexed(f: IndexedFile): void {
    this.st.markFile!.run(f.id, f.metaMtimeMs, f.metaSize, f.dataSize);
  }

  indexedFile(id: string): IndexedFile | undefined {
    return this.st.file!.get(id) as IndexedFile | undefined;
  }

  indexedFiles(): Map<string, IndexedFile> {
    return new Map((this.st.files!.all() as IndexedFile[]).map((f) => [f.id, f]));
  }

  search(q: SearchQuery): SearchPage {
    const { sql, params } = searchSql(q);
    const rows = this.db.prepare(sql).all(params) as HitRow[];
    const page = rows.slice(0, q.limit);
    return {
      hits: page.map(toHit),
      ...(rows.length > q.limit ? { next: String(page.at(-1)!.rowid) } : {}),
    };
  }

  sessions(q: SessionQuery): SessionPage {
    const { sql, params } = sessionsSql(q);
    const rows = this.db.prepare(sql).all(params) as SessionRow[];
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    return {
      sessions: page.map(toSession),
      ...(rows.length > q.limit && last ? { next: `${last.start_ms}.${last.id}` } : {}),
    };
  }

  session(id: string): IndexedSession | undefined {
    const row = this.st.session!.get(id) as SessionRow | undefined;
    return row ? toSession(row) : undefined;
  }

  /** Every row of every table in a stable order, to compare two indexes (tests). */
  dump(): Record<string, unknown[]> {
    // The inverted index must hold exactly the words of docs_text (external content: nothing
    // else checks that). A command, so only on a connection that may write.
    if (!this.db.readonly) this.db.prepare(`INSERT INTO docs_fts(docs_fts, rank) VALUES ('integrity-check', 1)`).run();
    return {
      sessions: this.db.prepare(`SELECT id, protocol, user, target, status, start_ms, denials, commands, meta FROM sessions ORDER BY id`).all(),
      docs: this.db.prepare(`SELECT recording, key, kind, t, text, via, name, verdict, rule, outcome FROM docs ORDER BY recording, key`).all(),
    };
  }

  close(): void {
    this.db.close();
  }
}

interface SessionRow { id: string; start_ms: number; meta: string; denials: number; commands: number; exec?: string | null }

function toSession(r: SessionRow): IndexedSession {
  return { ...(JSON.parse(r.meta) as RecordingMeta), denials: r.denials, commands: r.commands, ...(r.exec ? { exec: r.exec } : {}) };
}

interface HitRow {
  rowid: number; recording: string; kind: string; t: number; snippet: string; protocol: RecordingMeta['protocol'];
  user: string; target: string; meta: string; via: string | null; ctext: string | null; name: string | null;
  verdict: string | null; rule: string | null; outcome: string | null;
}

function toHit(r: HitRow): import('./index.types.js').SearchHit {
  const meta = JSON.parse(r.meta) as RecordingMeta;
  return {
    recording: r.recording, protocol: r.protocol, user: r.user, target: r.target, login: meta.login, start: meta.start,
    time: new Date(Math.floor(r.rowid / ROWID_SPREAD)).toISOString(), t: r.t, kind: r.kind as never, snippet: r.snippet.replace(/\s+/g, ' ').trim(),
    ...(r.via ? {
      command: {
        via: r.via as never, text: r.ctext!, name: r.name!, verdict: r.verdict as never,
        ...(r.rule ? { rule: r.rule } : {}), ...(r.outcome ? { outcome: r.outcome } : {}),
      },
    } : {}),
  };
}
