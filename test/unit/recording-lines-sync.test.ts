import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lineBatches, lineBatchesSync, type RecordingLine } from '../../recorder/recording-lines.js';

const dir = mkdtempSync(join(tmpdir(), 'pam-lines-sync-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function streamed(path: string, start: number, end: number): Promise<RecordingLine[]> {
  const out: RecordingLine[] = [];
  for await (const b of lineBatches(path, start, end)) out.push(...b);
  return out;
}

describe('lineBatchesSync (the index worker reader)', () => {
  it('gives the lines, offsets and byte counts lineBatches gives, for any bytes, range, chunk size and decode span', async () => {
    // Lines of multi-byte text, so chunk edges fall inside UTF-8 sequences and inside lines.
    const line = fc.array(fc.constantFrom('a', 'é', '€', '😀', ' ', '"'), { maxLength: 12 }).map((cs) => cs.join(''));
    await fc.assert(fc.asyncProperty(fc.array(line, { maxLength: 20 }), fc.boolean(), fc.nat(40), fc.option(fc.integer({ min: 1, max: 120 })), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 40 }),
      async (ls, lastNewline, startAt, endAt, chunk, span) => {
        const body = Buffer.from(ls.join('\n') + (lastNewline && ls.length ? '\n' : ''));
        const path = join(dir, 'f.jsonl');
        writeFileSync(path, body);
        // Starts on a line boundary, as the indexer's offsets are.
        const bounds = [0, ...[...body.entries()].filter(([, b]) => b === 10).map(([i]) => i + 1)];
        const start = bounds[startAt % bounds.length]!;
        const end = endAt === null ? Infinity : start + endAt;
        // Pieces decoded `span` bytes at a time (0: line by line), the buffer reused and grown.
        const sync = [...lineBatchesSync(path, start, end, chunk, undefined, span)].flat();
        expect(sync).toEqual(await streamed(path, start, end));
      }), { numRuns: 200 });
  });

  it('leaves the lines skip() names undecoded and gives every other line as the decoding of its bytes, invalid UTF-8 too', () => {
    const piece = fc.constantFrom('a', 'é', '€', ' ', '[', 'x', '\xff', '\xc3', '\xe2\x82', '\x80');
    const line = fc.array(piece, { maxLength: 10 }).map((cs) => cs.join(''));
    fc.assert(fc.property(fc.array(line, { maxLength: 20 }), fc.boolean(), fc.integer({ min: 1, max: 9 }), (ls, lastNewline, chunk) => {
      const body = Buffer.from(ls.join('\n') + (lastNewline && ls.length ? '\n' : ''), 'latin1');
      const path = join(dir, 's.jsonl');
      writeFileSync(path, body);
      const all = [...lineBatchesSync(path, 0, Infinity, chunk)].flat();
      const skip = (b: Buffer, from: number, to: number) => to > from && b[from] === 0x5b;
      const some = [...lineBatchesSync(path, 0, Infinity, chunk, () => skip)].flat();
      expect(some).toEqual(all.map((l) => (l.complete && l.text.startsWith('[') ? { ...l, text: '', skipped: true } : l)));
    }), { numRuns: 300 });
  });

  it('throws ENOENT for a missing file, as the indexer expects', () => {
    expect(() => [...lineBatchesSync(join(dir, 'missing.jsonl'))]).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
