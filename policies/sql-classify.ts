/**
 * What a SQL string does, statement by statement, read from the real Postgres parser
 * (libpg-query, WASM). The whole parse tree is walked, so DML hidden in a CTE, a subquery,
 * a PREPARE or a CREATE TABLE AS is seen like top-level DML.
 */
import { loadModule, parseSync } from 'libpg-query';

export interface SqlRelation {
  /** Absent when the statement did not qualify the name (search_path decides). */
  schema?: string;
  name: string;
}

export interface SqlStatement {
  /** Top-level node type, e.g. SelectStmt, UpdateStmt. */
  type: string;
  /** Every statement node type in the tree, the top-level one included (a CTE's DeleteStmt…). */
  types: string[];
  relations: SqlRelation[];
  /** Called functions, as written: `pg_read_file` or `pg_catalog.pg_read_file` (lower case unless quoted). */
  functions: string[];
  /** Types of UPDATE / DELETE nodes anywhere in the tree that have no WHERE clause. */
  withoutWhere: string[];
  /** COPY … TO/FROM PROGRAM. */
  copyProgram: boolean;
}

export type SqlClassification = { ok: true; statements: SqlStatement[] } | { ok: false; error: string };

let ready: Promise<void> | undefined;
let loaded = false;

/** Loads the WASM parser once; the proxy awaits this at start, before taking connections. */
export function initSqlParser(): Promise<void> {
  ready ??= loadModule().then(() => {
    loaded = true;
  });
  return ready;
}

export function sqlParserReady(): boolean {
  return loaded;
}

const CACHE_MAX = 5000;
/** Longer texts are classified every time rather than pinned in memory. */
const CACHE_TEXT_MAX = 64 * 1024;
const cache = new Map<string, SqlClassification>();
/** Calls into the parser since start (the cache is judged by it, not by a stopwatch). */
let parses = 0;

const FOLDABLE_CHARS = new Uint8Array(128);
for (const c of '\t\n\r !#%&()*+,-./:;<=>?@[]^`{|}~_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz') FOLDABLE_CHARS[c.charCodeAt(0)] = 1;
/** Characters that glue to a number: letters, digits, `_` and `.`. */
const WORD_CHARS = new Uint8Array(128);
for (const c of '._0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz') WORD_CHARS[c.charCodeAt(0)] = 1;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * The cache key of a statement text: texts that differ only in numeric constants share it
 * (`… WHERE aid = 17` and `… WHERE aid = 4242` → `… WHERE aid = 1`; 1, not 0, because the
 * grammar itself rejects a few zeros, `float(0)`), so a workload whose statements embed
 * constants (pgbench -M simple, ORMs without parameters) pays for one parse.
 *
 * Only a text made of printable ASCII and whitespace, with none of the characters that open a
 * context a scanner this simple cannot read, is folded: no quotes ('…', "…", E'…', U&"…"), no
 * `$` (dollar quotes, `$1` parameters), no backslash, no comment (`--`, `/*`). In such a text
 * every digit run is part of a name (a letter, digit or `_` touches it) or a numeric token. A
 * standalone decimal literal (`42`, `4.2`, `4.`, `4e10`, `4.2E-3`) is replaced when no letter,
 * digit, `_` or `.` touches it on either side; identifiers (`t1`), `0x1F`, `1_000`, `.5` and
 * trailing junk (`1abc`) keep their text and only make the key more specific.
 *
 * Classification never looks at constant values (types, relations, functions, WHERE presence,
 * COPY PROGRAM), which the unit tests check on a corpus. A folded key starts with NUL, which no
 * statement text can contain (the protocol sends C strings), so it never collides with a raw
 * text. One pass over the text, no regex: this runs for every statement.
 */
export function sqlCacheKey(sql: string): string {
  const n = sql.length;
  if (n > 4096) return sql;
  let out: string | undefined;
  let copied = 0; // sql[copied, i) not yet appended to out
  let prev = 0;
  for (let i = 0; i < n; ) {
    const c = sql.charCodeAt(i);
    if (c >= 128 || FOLDABLE_CHARS[c] === 0) return sql;
    if ((c === 0x2d && prev === 0x2d) || (c === 0x2a && prev === 0x2f)) return sql; // -- and /*
    if (isDigit(c) && (prev >= 128 || WORD_CHARS[prev] === 0)) {
      let j = i + 1;
      while (j < n && isDigit(sql.charCodeAt(j))) j++;
      if (j < n && sql.charCodeAt(j) === 0x2e) {
        j++;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
      }
      const e = j < n ? sql.charCodeAt(j) : 0;
      if (e === 0x65 || e === 0x45) {
        let k = j + 1;
        const sign = k < n ? sql.charCodeAt(k) : 0;
        if (sign === 0x2b || sign === 0x2d) k++;
        if (k < n && isDigit(sql.charCodeAt(k))) {
          while (k < n && isDigit(sql.charCodeAt(k))) k++;
          j = k;
        }
      }
      const after = j < n ? sql.charCodeAt(j) : 0x20;
      if (after < 128 && WORD_CHARS[after] === 0) {
        out = (out ?? '\0') + sql.slice(copied, i) + '1';
        copied = j;
      }
      // Glued to a word (or not a literal we fold): keep the text, scan on after it.
      prev = sql.charCodeAt(j - 1);
      i = j;
      continue;
    }
    prev = c;
    i++;
  }
  return out === undefined ? sql : out + sql.slice(copied);
}

/**
 * Classifies every statement in `sql`. Never throws: a syntax error, or a parser that was not
 * initialised, comes back as `{ ok: false }` (the evaluator denies it by default).
 *
 * Cached by `sqlCacheKey`. A text that fails to parse is cached under its own text only: the
 * grammar rejects some constants by value (`float(0)`), and one bad text must not make its
 * well-formed siblings unparseable. The reverse (a folded hit for a text the grammar would
 * reject by value) is harmless: the server runs the same grammar and rejects it, so nothing runs.
 */
export function classifySql(sql: string): SqlClassification {
  const key = sqlCacheKey(sql);
  const hit = cache.get(key) ?? (key !== sql ? cache.get(sql) : undefined);
  if (hit) {
    // Map keeps insertion order: re-inserting makes this the most recently used entry.
    const k = cache.has(key) ? key : sql;
    cache.delete(k);
    cache.set(k, hit);
    return hit;
  }
  const result = classifyUncached(sql);
  if (sql.length <= CACHE_TEXT_MAX && (result.ok || loaded)) {
    cache.set(result.ok ? key : sql, result);
    if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
  }
  return result;
}

/** Classification without the cache (tests compare it with the cached one). */
export function classifySqlUncached(sql: string): SqlClassification {
  return classifyUncached(sql);
}

export function sqlCacheSize(): number {
  return cache.size;
}

/** How many texts the parser has read since start. */
export function sqlParseCount(): number {
  return parses;
}

function classifyUncached(sql: string): SqlClassification {
  if (!loaded) return { ok: false, error: 'SQL parser not initialised (call initSqlParser() at start)' };
  let tree: { stmts?: Array<{ stmt?: Record<string, unknown> }> };
  try {
    parses++;
    tree = parseSync(sql) as typeof tree;
  } catch (e) {
    // An empty query (blank, only comments) is what psql sends for `;`: nothing runs.
    if (/cannot be empty/i.test((e as Error).message)) return { ok: true, statements: [] };
    return { ok: false, error: (e as Error).message };
  }
  const statements: SqlStatement[] = [];
  for (const raw of tree.stmts ?? []) {
    if (!raw.stmt) continue;
    const type = Object.keys(raw.stmt)[0] ?? 'Unknown';
    const st: SqlStatement = { type, types: [], relations: [], functions: [], withoutWhere: [], copyProgram: false };
    walk(raw.stmt, st, 0);
    st.types = [...new Set([type, ...st.types])];
    st.functions = [...new Set(st.functions)];
    statements.push(st);
  }
  return { ok: true, statements };
}

type Node = Record<string, unknown>;
const isObj = (v: unknown): v is Node => typeof v === 'object' && v !== null;

/** DROP / COMMENT objects that name relations (not types, functions, schemas…). */
const RELATION_OBJECTS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE', 'OBJECT_INDEX']);

function walk(v: unknown, st: SqlStatement, depth: number): void {
  if (depth > 2000) return;
  if (Array.isArray(v)) {
    for (const x of v) walk(x, st, depth + 1);
    return;
  }
  if (!isObj(v)) return;
  for (const [key, val] of Object.entries(v)) {
    if (!isObj(val)) continue;
    if (key === 'RangeVar') addRangeVar(val, st);
    else if (key === 'FuncCall') st.functions.push(names(val.funcname).join('.'));
    else if (/^[A-Z]\w*Stmt$/.test(key)) {
      st.types.push(key);
      if ((key === 'UpdateStmt' || key === 'DeleteStmt') && val.whereClause === undefined) st.withoutWhere.push(key);
      if (key === 'CopyStmt' && val.is_program === true) st.copyProgram = true;
      if ((key === 'DropStmt' || key === 'CommentStmt') && RELATION_OBJECTS.has(String(val.removeType ?? val.objtype))) addObjects(val, st);
    }
    // A relation in UPDATE / DELETE / INSERT / COPY sits under `relation` without the RangeVar wrapper.
    if ((key === 'relation' || key === 'rel') && !('RangeVar' in val) && typeof val.relname === 'string') addRangeVar(val, st);
    walk(val, st, depth + 1);
  }
}

function addRangeVar(rv: Node, st: SqlStatement): void {
  if (typeof rv.relname !== 'string') return;
  st.relations.push(typeof rv.schemaname === 'string' ? { schema: rv.schemaname, name: rv.relname } : { name: rv.relname });
}

function addObjects(stmt: Node, st: SqlStatement): void {
  const objects = Array.isArray(stmt.objects) ? stmt.objects : stmt.object !== undefined ? [stmt.object] : [];
  for (const o of objects) {
    const parts = isObj(o) && isObj(o.List) ? names(o.List.items) : [];
    if (parts.length === 1) st.relations.push({ name: parts[0]! });
    else if (parts.length >= 2) st.relations.push({ schema: parts[parts.length - 2]!, name: parts[parts.length - 1]! });
  }
}

function names(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((n) => (isObj(n) && isObj(n.String) && typeof n.String.sval === 'string' ? n.String.sval : '')).filter(Boolean);
}
