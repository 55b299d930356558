import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { plainAsciiKept, plainAsciiKeptJs, plainAsciiStringKept, terminalAsciiText, wasmScanAvailable } from '../../recorder/index/ascii-text.js';
import { AsciicastExtractor, MAX_OUTPUT_CHARS, withoutEncodedLines } from '../../recorder/index/extract-asciicast.js';
import { RawExtractor } from '../../recorder/index/extract-raw.js';
import type { IndexOp } from '../../recorder/index/index.types.js';
import { FrameType } from '../../recorder/raw-frame.js';
import { TextClassifier } from '../../recorder/raw-reader.js';
import { plainText } from '../../recorder/terminal-escapes.js';

/** Byte pieces: base64 runs and padding, every line end and control the string path handles, split and whole UTF-8, a BOM, NUL. */
const piece = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 90 }).map((k) => Buffer.from(randomBytes(k).toString('base64').replace(/=+$/, ''))) },
  // Long runs with all three classes, and with one missing (not base64 by the definition).
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('a1B', 'aB+', 'a1/', '1B'), fc.integer({ min: 55, max: 70 })).map(([u, k]) => Buffer.from(u.repeat(k).slice(0, k))) },
  { weight: 3, arbitrary: fc.constantFrom('\n', '=', '==', '===', ' ', '\t', 'x:', 'word', 'https://h.example/p?q=1').map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.constantFrom('\r', '\r\n', '\x1b[31m', '\x1b]0;title\x07', '\x7f', '\x0b', '\x1b', '\u2028', '\x85', 'é', '\ufeff').map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: fc.constantFrom([0xc3], [0xa9], [0xe2, 0x82], [0xff], [0]).map((b) => Buffer.from(b)) },
);
const bytes = fc.array(piece, { maxLength: 14 }).map((ps) => Buffer.concat(ps));
const plainAscii = (b: Buffer) => b.every((c) => c === 9 || c === 10 || (c >= 32 && c < 127));

// The oracle: every payload through TextClassifier.feed and the string path, as before.
const oracle = (payloads: Buffer[]) => {
  const ex = new AsciicastExtractor(0);
  const c = new TextClassifier();
  const ops: IndexOp[] = [];
  payloads.forEach((p, i) => {
    if (!ex.wantsOutput) return;
    const was = c.binary;
    const s = c.feed(p);
    if (s) ex.event(i, 'o', s, ops);
    else if (s === undefined && !was) ex.event(i, 'm', 'binary stdout on channel 0', ops);
  });
  ex.end(ops);
  return ops;
};
const raw = (payloads: Buffer[]) => {
  const ex = new RawExtractor(0);
  const ops: IndexOp[] = [];
  payloads.forEach((payload, i) => ex.frame({ type: FrameType.Data, stream: 1, channel: 0, t: i * 1000, payload, offset: 0 }, ops));
  ex.end(ops);
  return ops;
};

describe('index text from plain ASCII bytes (ascii-text.ts)', () => {
  it('gives what decoding, plainText and withoutEncodedLines give, exactly for plain ASCII payloads (WebAssembly and JavaScript scans)', () => {
    // This machine has WebAssembly SIMD: the test is of both scans, not of the fallback twice.
    expect(wasmScanAvailable).toBe(true);
    for (const scan of [plainAsciiKept, plainAsciiKeptJs]) {
      fc.assert(fc.property(bytes, fc.nat(15), (b0, pad) => {
        // Any alignment of the payload in its buffer, as the raw reader's subarrays have.
        const b = Buffer.concat([Buffer.alloc(pad, 0x41), b0]).subarray(pad);
        const kept = scan(b);
        expect(kept !== undefined).toBe(plainAscii(b));
        if (kept !== undefined) {
          const plain = plainText(b.toString('utf8'));
          expect(plain.length).toBe(b.length);
          expect(kept).toBe(withoutEncodedLines(plain));
        }
      }), { numRuns: 4000 });
      const lines = Buffer.from(`${(randomBytes(57 * 300).toString('base64').match(/.{1,76}/g) ?? []).join('\n')}\nafter\n`);
      expect(scan(lines)).toBe('after\n');
    }
  });

  it('on text already plain: withoutEncodedLines for all-ASCII text, undefined for any other (Latin-1, wider, lone surrogates)', () => {
    const bit = fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: 1, max: 90 }).map((k) => randomBytes(k).toString('base64').replace(/=+$/, '')) },
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom('a1B', 'aB+', '1B'), fc.integer({ min: 55, max: 70 })).map(([u, k]) => u.repeat(k).slice(0, k)) },
      { weight: 3, arbitrary: fc.constantFrom('\n', '\r\n', '=', '==', ' ', '\t', 'word', '\x1b[1m') },
      { weight: 1, arbitrary: fc.constantFrom('é', 'ÿ', '\u0141', '\u2028', '😀', '\ud800', '\x85', '\ufeff') },
    );
    fc.assert(fc.property(fc.array(bit, { maxLength: 14 }), (bits) => {
      const plain = plainText(bits.join(''));
      const kept = plainAsciiStringKept(plain);
      // eslint-disable-next-line no-control-regex
      expect(kept === undefined).toBe(/[^\x00-\x7f]/.test(plain));
      if (kept !== undefined) expect(kept).toBe(withoutEncodedLines(plain));
    }), { numRuns: 4000 });
    const text = `${'x'.repeat(70)}\n`.repeat(2000);
    expect(plainAsciiStringKept(text)).toBe(text);
  });

  it('terminal output: plainText and withoutEncodedLines in one go for ASCII with tab, LF and CR only, undefined for any other', () => {
    const bit = fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: 1, max: 90 }).map((k) => randomBytes(k).toString('base64').replace(/=+$/, '')) },
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom('a1B', 'aB+', '1B'), fc.integer({ min: 55, max: 70 })).map(([u, k]) => u.repeat(k).slice(0, k)) },
      { weight: 4, arbitrary: fc.constantFrom('\r\n', '\r', '\n', '\n\r', '\r\r\n', '=', '==', ' ', '\t', 'word') },
      { weight: 1, arbitrary: fc.constantFrom('\x1b[1m', '\x07', '\x7f', '\x00', 'é', '\u0141', '\u2028', '😀', '\ud800', '\x85') },
    );
    const terminal = (s: string) => /^[\t\n\r\x20-\x7e]*$/.test(s);
    const same = (s: string) => {
      const got = terminalAsciiText(s);
      expect(got === undefined).toBe(!terminal(s));
      if (got) {
        const plain = plainText(s);
        expect(got).toEqual({ length: plain.length, kept: withoutEncodedLines(plain) });
      }
    };
    fc.assert(fc.property(fc.array(bit, { maxLength: 14 }), (bits) => same(bits.join(''))), { numRuns: 4000 });
    // Long text, so CRs fall on every lane and CR LF across blocks; base64 lines among words.
    fc.assert(fc.property(fc.array(bit, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 600 }), (bits, times) => {
      same(Array.from({ length: times }, (_, i) => bits[i % bits.length]).join(''));
    }), { numRuns: 200 });
  });

  it('the WebAssembly scan agrees with the JavaScript one on whole 64 KiB payloads and larger, however lines fall on its blocks', () => {
    const line = fc.oneof(
      fc.integer({ min: 40, max: 100 }).map((k) => randomBytes(k).toString('base64')),
      fc.integer({ min: 0, max: 120 }).map((k) => 'words and 0123 '.repeat(9).slice(0, k)),
      fc.constantFrom('AbC1'.repeat(15), 'AbC1'.repeat(15) + '=', 'AbC1'.repeat(15) + '===', 'abcd'.repeat(20), 'x\x01y', 'é'),
    );
    fc.assert(fc.property(fc.array(line, { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 1800 }), fc.boolean(), (ls, times, nl) => {
      const b = Buffer.from(Array.from({ length: times }, (_, i) => ls[i % ls.length]).join('\n') + (nl ? '\n' : ''));
      expect(plainAsciiKept(b)).toBe(plainAsciiKeptJs(b));
    }), { numRuns: 150 });
  });

  it('a raw recording indexes the same ops as the decoder path, over streams of any payloads', () => {
    fc.assert(fc.property(fc.array(bytes, { maxLength: 8 }), (payloads) => {
      expect(raw(payloads)).toEqual(oracle(payloads));
    }), { numRuns: 2000 });
    // Cases the settled decoder is for: a BOM after ASCII text is a character (only a first one is
    // dropped), and ASCII after a character cut short is invalid UTF-8 (binary from there).
    for (const payloads of [
      [Buffer.from('ascii first\n'), Buffer.from('\ufeffkept-bom\n')],
      [Buffer.from('\ufeffdropped-bom\n'), Buffer.from('then ascii\n')],
      [Buffer.from('text\n'), Buffer.from([0x41, 0xc3]), Buffer.from('ascii after a cut character\n')],
    ]) expect(raw(payloads)).toEqual(oracle(payloads));
    expect(raw([Buffer.from('a\n'), Buffer.from('\ufeffb\n')]).map((o) => o.op === 'doc' && o.text)).toContain('a\n\ufeffb\n');
  });

  it('counts plain ASCII toward the output cap as the string path does, base64 lines dropped or not', () => {
    const words = Buffer.from(`${'the quick brown fox 0123456789 '.repeat(4)}\n`);
    const b64 = Buffer.from(`${(randomBytes(57 * 40).toString('base64').match(/.{1,76}/g) ?? []).join('\n')}\n`);
    const frame = Buffer.concat(Array.from({ length: 200 }, (_, i) => (i % 3 ? b64 : words))).subarray(0, 65536);
    const payloads = Array.from({ length: Math.ceil(MAX_OUTPUT_CHARS / frame.length) + 3 }, () => frame);
    const ops = raw(payloads);
    expect(ops).toEqual(oracle(payloads));
    expect(ops.some((o) => o.op === 'doc' && o.text.startsWith('output after the first 4 MiB'))).toBe(true);
  });
});
