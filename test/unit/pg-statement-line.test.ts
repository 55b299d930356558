import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatMs, jsonString, statementLine, type StatementFacts } from '../../proxy/postgres/statement-line.js';

/**
 * The statement line is built without JSON.stringify on the common path (statement-line.ts): it
 * must stay byte for byte what JSON.stringify writes, for any text (controls, quotes,
 * backslashes, paired and lone surrogates) and any duration.
 */

/** Any UTF-16 code units, lone surrogates included, and the characters that need escapes. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\ud800', '\udfff', '\ud83d\ude00', 'a', 'é', ' ') }),
);

describe('statement line', () => {
  it('jsonString is JSON.stringify for any text', () => {
    fc.assert(fc.property(anyText, (s) => { expect(jsonString(s)).toBe(JSON.stringify(s)); }), { numRuns: 2000 });
    for (const s of ['', 'SELECT 1', 'a"b', 'a\\b', 'x\ny', '\ud800', '\ud83d\ude00', '\u2028']) expect(jsonString(s)).toBe(JSON.stringify(s));
  });

  it('formatMs is String() of a duration rounded to the microsecond', () => {
    const rounded = (x: number) => Math.round(x * 1000) / 1000;
    fc.assert(fc.property(fc.double({ min: 0, max: 1e9, noNaN: true }), (x) => { expect(formatMs(rounded(x))).toBe(String(rounded(x))); }), { numRuns: 5000 });
    for (const x of [0, -0, 0.001, 0.05, 0.1, 1, 1.5, 12.34, 999.999, 1000, 86400000.001]) expect(formatMs(rounded(x))).toBe(String(rounded(x)));
  });

  it('a whole line parses to the facts given, params as JSON.stringify writes them', () => {
    const facts = fc.record({
      sql: anyText, statement: anyText, portal: anyText, tag: anyText,
      params: fc.array(fc.oneof(anyText, fc.constant(null), fc.record({ hex: fc.string() }), fc.record({ text: anyText, truncated: fc.nat() }))),
      ms: fc.double({ min: 0, max: 1e6, noNaN: true }),
    });
    fc.assert(fc.property(facts, (f) => {
      const ms = Math.round(f.ms * 1000) / 1000;
      const p: StatementFacts = { k: 'execute', start: 0, sql: f.sql, statement: f.statement, portal: f.portal, params: f.params, rows: 3, tags: [f.tag] };
      const line = statementLine(p, '2026-01-01T00:00:00.000Z', ms);
      expect(line).toContain(`"params":${JSON.stringify(f.params)}`);
      expect(line).toContain(`"duration_ms":${JSON.stringify(ms)},`);
      expect(JSON.parse(line)).toMatchObject({ type: 'statement', protocol: 'extended', sql: f.sql, statement: f.statement, portal: f.portal, params: f.params, duration_ms: ms, tag: f.tag });
    }), { numRuns: 500 });
  });
});
