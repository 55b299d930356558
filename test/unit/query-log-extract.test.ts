import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sqlName } from '../../recorder/index/command-name.js';
import { QueryLogExtractor } from '../../recorder/index/extract-query-log.js';
import type { IndexOp } from '../../recorder/index/index.types.js';

/**
 * The Postgres extractor runs once per statement on the index worker, so it reads the line
 * without regexes or spreads where it can; these oracles are the plain forms it replaced.
 */
function sqlNameOracle(sql: string): string {
  const s = sql.replace(/^(\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/)+/, '');
  return (/^[A-Za-z]+/.exec(s)?.[0] ?? '').toUpperCase();
}

function outcomeOracle(e: Record<string, unknown>, v: { decision?: string; hold?: string }): string | undefined {
  const err = e.error as { sqlstate?: string; message?: string } | undefined;
  const parts: string[] = [];
  if (e.type === 'alert') parts.push('alert');
  if (err) parts.push(`ERROR ${err.sqlstate ?? ''} ${err.message ?? ''}`.replace(/\s+/g, ' ').trim());
  else {
    const tag = typeof e.tag === 'string' ? e.tag : Array.isArray(e.tags) ? e.tags.join(', ') : undefined;
    if (tag) parts.push(tag);
    else if (typeof e.rows === 'number') parts.push(`${e.rows} rows`);
  }
  if (v.decision) parts.push(`review ${v.decision}${v.hold ? ` (${v.hold})` : ''}`);
  return parts.length ? parts.join('; ').slice(0, 2000) : undefined;
}

function extractOracle(lines: string[]): IndexOp[] {
  const out: IndexOp[] = [];
  let startMs: number | undefined;
  let key = 0;
  for (const line of lines) {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (!e || typeof e !== 'object') continue;
    const ms = Date.parse(String(e.t));
    if (!Number.isFinite(ms)) continue;
    startMs ??= ms;
    if ((e.type === 'notice' || e.type === 'error') && e.from === 'proxy' && typeof e.message === 'string') {
      key++;
      out.push({ op: 'doc', key, kind: 'marker', t: (ms - startMs) / 1000, ts: ms, text: `[pam] ${String(e.severity ?? '')}: ${e.message}`.slice(0, 20_000) });
      continue;
    }
    if (e.type !== 'statement' && e.type !== 'alert') continue;
    key++;
    if (typeof e.sql !== 'string') continue;
    const v = (e.verdict ?? {}) as { action?: string; rule?: string; decision?: string; hold?: string };
    const verdict = ['allow', 'alert', 'review', 'deny'].includes(v.action as string) ? (v.action as 'deny') : 'allow';
    out.push({
      op: 'command', key, t: (ms - startMs) / 1000, ts: ms, via: 'sql', text: e.sql.slice(0, 20_000), name: sqlNameOracle(e.sql), verdict,
      ...(typeof v.rule === 'string' ? { rule: v.rule } : e.verdict ? { rule: 'default_action' } : {}),
      ...(outcomeOracle(e, v) ? { outcome: outcomeOracle(e, v) } : {}),
    });
  }
  return out;
}

const sqlText = fc.oneof(
  fc.constantFrom('SELECT 1', 'select abalance from t where aid = 5', '  update t set a = 1', '-- c\nDELETE FROM t', '/* x */ insert into t values (1)', 'ſelect 1', '(select 1)', '', 'É', 'begin'),
  fc.string({ unit: fc.constantFrom('a', 'Z', ' ', '\n', '-', '/', '*', '1', 'é', ';'), maxLength: 20 }),
);
const time = fc.oneof(
  fc.constantFrom('2026-12-03T10:00:00.000Z', '2026-12-03T10:00:00.001Z', '2026-12-03T10:00:01.500Z', 'not a time', ''),
  fc.constantFrom(undefined, 5, null),
);
const lineObject = fc.record({
  t: time,
  type: fc.constantFrom('statement', 'alert', 'notice', 'error', 'start', 'end', undefined),
  from: fc.constantFrom('proxy', undefined),
  severity: fc.constantFrom('NOTICE', 'FATAL', undefined),
  message: fc.constantFrom('hold waiting', 'terminating', undefined, 3),
  sql: fc.oneof(sqlText, fc.constantFrom(undefined, null, 7)),
  verdict: fc.oneof(
    fc.record({ action: fc.constantFrom('allow', 'deny', 'review', 'alert', 'bogus', undefined), rule: fc.constantFrom('no-drop', undefined, 3), decision: fc.constantFrom('approved', 'expired', undefined, ''), hold: fc.constantFrom('hold_1', undefined) }, { requiredKeys: [] }),
    fc.constantFrom(undefined, null, 'x', 0),
  ),
  error: fc.oneof(fc.record({ sqlstate: fc.constantFrom('42501', undefined), message: fc.constantFrom('DROP  is\nblocked', '', undefined) }, { requiredKeys: [] }), fc.constantFrom(undefined, 'x')),
  tag: fc.constantFrom('SELECT 1', 'UPDATE 0', '', undefined, 4),
  tags: fc.oneof(fc.array(fc.constantFrom('SELECT 1', 'INSERT 0 2', ''), { maxLength: 3 }), fc.constant(undefined)),
  rows: fc.constantFrom(0, 1, 40, undefined, '3'),
}, { requiredKeys: [] });
const line = fc.oneof({ weight: 8, arbitrary: lineObject.map((o) => JSON.stringify(o)) }, fc.constantFrom('{"t":"2026-12-03T10:00:00.000Z","type":"statement","sql":"SEL', '[1,2]', 'null', '"s"'));

describe('Postgres query-log extraction', () => {
  it('gives the ops of the plain reading for any lines (times repeated or not, verdicts, outcomes, torn lines)', () => {
    fc.assert(fc.property(fc.array(line, { maxLength: 30 }), (lines) => {
      const ex = new QueryLogExtractor();
      const out: IndexOp[] = [];
      for (const l of lines) ex.line(l, out);
      expect(out).toEqual(extractOracle(lines));
      // Same key order too: the ops are built field by field.
      expect(out.map((o) => Object.keys(o))).toEqual(extractOracle(lines).map((o) => Object.keys(o)));
    }), { numRuns: 500 });
  });

  it('names a statement by its first keyword as the comment-skipping regex does', () => {
    fc.assert(fc.property(sqlText, (sql) => {
      expect(sqlName(sql)).toBe(sqlNameOracle(sql));
    }), { numRuns: 1000 });
    expect(sqlName('select abalance')).toBe('SELECT');
    expect(sqlName('  -- why\n/* note */ delete from t')).toBe('DELETE');
  });
});
