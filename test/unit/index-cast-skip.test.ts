import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AsciicastExtractor, isOutputEventLine, MAX_OUTPUT_CHARS } from '../../recorder/index/extract-asciicast.js';
import type { IndexOp } from '../../recorder/index/index.types.js';
import { Indexer } from '../../recorder/index/indexer.js';
import { SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import { lineBatchesSync } from '../../recorder/recording-lines.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';

const root = mkdtempSync(join(tmpdir(), 'pam-index-cast-skip-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const PREFIX = /^\[\s*([0-9.eE+-]+)\s*,\s*"([a-z])"/;
const start = Date.parse('2026-12-01T10:00:00Z');

/** A terminal session that prints past the output cap, with markers, input and a resize after it. */
function session(): string[] {
  const text = `${'the quick brown fox 0123456789 jumps\r\n'.repeat(1700)}`;
  const lines = [JSON.stringify({ version: 2, width: 80, height: 24, timestamp: start / 1000 })];
  let t = 0;
  lines.push(JSON.stringify([(t += 0.1), 'm', 'exec: cat big.log']));
  for (let chars = 0; chars < MAX_OUTPUT_CHARS * 1.5; chars += text.length) lines.push(JSON.stringify([+(t += 0.01).toFixed(6), 'o', text]));
  lines.push(JSON.stringify([(t += 0.1), 'o', 'after-the-cap-word\r\n']));
  lines.push(JSON.stringify([(t += 0.1), 'r', '100x30']));
  lines.push(JSON.stringify([(t += 0.1), 'i', 'uptime\r']));
  lines.push(JSON.stringify([(t += 0.1), 'm', 'denied: systemctl stop nginx: not allowed (rule no-stop)']));
  lines.push(JSON.stringify([(t += 0.1), 'm', 'exit status 0']));
  return lines;
}

describe('asciicast past the output cap: output lines are not decoded', () => {
  it('says yes only of lines PREFIX reads as output', () => {
    const bit = fc.constantFrom('[', ']', ' ', '\t', '\n', '0', '12.5', 'e', '-', '+', ',', '"', 'o', 'i', 'm', '"o"', '"i"', 'é', '{');
    fc.assert(fc.property(fc.array(bit, { maxLength: 12 }), (bits) => {
      const line = bits.join('');
      const b = Buffer.from(`x${line}\n`);
      if (isOutputEventLine(b, 1, b.length - 1)) expect(PREFIX.exec(line)?.[2]).toBe('o');
    }), { numRuns: 5000 });
    for (const l of ['[0.442000, "o", "x"]', '[1,"o",""]', '[ 3e-2 ,\t"o", "x"]']) expect(isOutputEventLine(Buffer.from(l), 0, l.length)).toBe(true);
    for (const l of ['[0.4, "m", "o"]', '{"o"', '[, "o"]', '[1 "o"]', '[1, "o']) expect(isOutputEventLine(Buffer.from(l), 0, l.length)).toBe(false);
  });

  it('indexes what the extractor makes of every line, live in ticks and whole, and skips the output lines past the cap', async () => {
    const lines = session();
    // The oracle: every line decoded and given to the extractor.
    const oracle = new AsciicastExtractor(start);
    const want: IndexOp[] = [];
    let outputPastCap = 0;
    for (const l of lines) {
      if (!oracle.wantsOutput && PREFIX.exec(l)?.[2] === 'o') outputPastCap++;
      oracle.line(l, want);
    }
    oracle.end(want);

    const dir = join(root, 'rec');
    mkdirSync(dir, { recursive: true });
    const meta: RecordingMeta = { id: '0mx5cxr01-c0ffee01', protocol: 'ssh', format: 'asciicast', user: 'dana', subject: 'dana', login: 'root', target: 'web', start: new Date(start).toISOString(), bytes: 0, status: 'live' };
    const path = join(dir, `${meta.id}.cast`);
    const body = `${lines.join('\n')}\n`;
    writeFileSync(path, '');
    writeFileSync(join(dir, `${meta.id}.meta.json`), JSON.stringify(meta));
    const live = new SqliteIndexStore(join(root, 'live.sqlite'));
    const ix = new Indexer(live, dir, { tickBytes: 300 * 1024 });
    await ix.onMeta(meta);
    for (let at = 0; at < body.length; at += 1_234_567) {
      appendFileSync(path, body.slice(at, at + 1_234_567));
      do await ix.tick(); while (ix.behind);
    }
    const ended = { ...meta, status: 'ended' as const, end: new Date(start + 9000).toISOString() };
    writeFileSync(join(dir, `${meta.id}.meta.json`), JSON.stringify(ended));
    await ix.onMeta(ended);
    while (ix.behind) await ix.tick();
    const whole = new SqliteIndexStore(join(root, 'whole.sqlite'));
    await new Indexer(whole, dir).sync({ all: true });
    const expected = new SqliteIndexStore(join(root, 'oracle.sqlite'));
    expected.batch(() => expected.apply(meta.id, want));
    expect(live.dump().docs).toEqual(expected.dump().docs);
    expect(whole.dump().docs).toEqual(live.dump().docs);
    const texts = (live.dump().docs as { text: string }[]).map((d) => d.text);
    expect(texts.some((t) => t.includes('after-the-cap-word'))).toBe(false);
    expect(texts).toContain('systemctl stop nginx');

    // The reader with the extractor's skipLine: every output line past the cap comes undecoded.
    const ex = new AsciicastExtractor(start);
    const ops: IndexOp[] = [];
    let skipped = 0;
    for (const batch of lineBatchesSync(path, 0, Infinity, 64 * 1024, () => ex.skipLine)) {
      for (const l of batch) {
        if (l.skipped) skipped++;
        else ex.line(l.text, ops);
      }
    }
    expect(outputPastCap).toBeGreaterThan(lines.length / 4);
    expect(skipped).toBe(outputPastCap);
    live.close();
    whole.close();
    expected.close();
  });
});
