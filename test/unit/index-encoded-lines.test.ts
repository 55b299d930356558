import { randomBytes, createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AsciicastExtractor, ENCODED_MARKER, MAX_OUTPUT_CHARS, withoutEncodedLines } from '../../recorder/index/extract-asciicast.js';
import type { IndexOp } from '../../recorder/index/index.types.js';

/** `base64` as the coreutils tool prints it: 76 characters a line (whole lines when `bytes` is a multiple of 57; a shorter last line is kept, as any short line). */
function base64Lines(bytes: number): string {
  return (randomBytes(bytes).toString('base64').match(/.{1,76}/g) ?? []).join('\n') + '\n';
}

function docs(ops: IndexOp[], kind: string): string[] {
  return ops.flatMap((o) => (o.op === 'doc' && o.kind === kind ? [o.text] : []));
}

/** The definition the scan in withoutEncodedLines replaced (a regular expression and a per-line check): the oracle. */
function byRegex(text: string): string {
  if (text.length < 60) return text;
  return text.replace(/^[A-Za-z0-9+/]{60,}={0,2}\r?(?:\n|$)/gm, (line) => (/[A-Z]/.test(line) && /[a-z]/.test(line) && /[0-9]/.test(line) ? '' : line));
}

describe('base64 lines in output are not indexed', () => {
  it('the scan drops exactly the lines the regular expression drops, for any text', () => {
    // Pieces that make long runs of the alphabet, padding, every line terminator and other text.
    const piece = fc.oneof(
      fc.constantFrom('\n', '\r', '\r\n', '\u2028', '\u2029', '=', '==', '===', ' ', 'é', 'x:', '-'),
      fc.integer({ min: 1, max: 90 }).map((k) => randomBytes(k).toString('base64').replace(/=+$/, '')),
      fc.integer({ min: 55, max: 70 }).map((k) => 'a1B'.repeat(k).slice(0, k)),
      fc.integer({ min: 55, max: 70 }).map((k) => 'abc'.repeat(k).slice(0, k)),
    );
    fc.assert(fc.property(fc.array(piece, { maxLength: 12 }), (ps) => {
      const text = ps.join('');
      expect(withoutEncodedLines(text)).toBe(byRegex(text));
    }), { numRuns: 3000 });
    const lines = base64Lines(57 * 200);
    expect(withoutEncodedLines(`a\n${lines}b`)).toBe(byRegex(`a\n${lines}b`));
  });

  it('drops lines of base64 and keeps words, hex hashes, URLs and short lines around them', () => {
    const hash = createHash('sha256').update('x').digest('hex');
    const url = 'https://downloads.example.com/releases/v1.2.3/package-linux-amd64.tar.gz?sig=AbC123';
    const text = `before-word\n${base64Lines(57 * 50)}${hash}\n${hash.toUpperCase()}\n${url}\nQUJDRA==\nafter-word\n`;
    const kept = withoutEncodedLines(text);
    expect(kept).toBe(`before-word\n${hash}\n${hash.toUpperCase()}\n${url}\nQUJDRA==\nafter-word\n`);
    // A line of words, however long, is not data.
    const prose = `${'the quick brown fox jumps over the lazy dog '.repeat(5)}\n`;
    expect(withoutEncodedLines(prose)).toBe(prose);
  });

  it('indexes the words between encoded lines, says once that encoded output is not indexed, and counts it toward the cap', () => {
    const ex = new AsciicastExtractor(0);
    const ops: IndexOp[] = [];
    let t = 0;
    ex.event((t += 0.1), 'o', 'tar czf - /etc | base64\r\n', ops);
    const blob = base64Lines(57 * 860);
    let sent = 0;
    for (; sent < MAX_OUTPUT_CHARS * 1.2; sent += blob.length) {
      ex.event((t += 0.1), 'o', blob, ops);
      if (sent === 0) ex.event((t += 0.1), 'o', 'canary-7f3a printed between blobs\r\n', ops);
    }
    ex.event((t += 0.1), 'm', 'exec: systemctl stop nginx', ops);
    ex.end(ops);
    const output = docs(ops, 'output').join('');
    expect(output).toContain('canary-7f3a');
    expect(output).toContain('tar czf');
    expect(output.length).toBeLessThan(200);
    const markers = docs(ops, 'marker');
    expect(markers.filter((m) => m === ENCODED_MARKER)).toHaveLength(1);
    // The dropped text still counted: the cap's marker came, so past it nothing is even parsed.
    expect(markers.some((m) => /^output after the first 4 MiB of text is not indexed/.test(m))).toBe(true);
    expect(ex.wantsOutput).toBe(false);
    expect(ops.some((o) => o.op === 'command' && o.name === 'systemctl')).toBe(true);
  });
});
