import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AsciicastWriter } from '../../recorder/asciicast-writer.js';
import { escapeJsonBytes, wasmEscapeAvailable } from '../../recorder/json-escape/index.js';

const dir = await mkdtemp(join(tmpdir(), 'pam-escape-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Splits a buffer at the given cut points (in any order, any range). */
function cut(buf: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((x) => x % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    parts.push(buf.subarray(from, p));
    from = p;
  }
  parts.push(buf.subarray(from));
  return parts;
}

/** Text with every character class the escaper treats differently, in long runs and alone. */
const terminalText = fc.string({
  unit: fc.oneof(
    fc.constantFrom('\n', '\r', '\t', '"', '\\', '\x1b', '\x00', '\x7f', '\b', '\f', '\x0b', 'é', '€', '😀'),
    fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 3 }),
  ),
  maxLength: 200,
});

describe('WebAssembly JSON escaper', () => {
  it('loads on this machine (the proxy would otherwise fall back to the slower JavaScript path)', () => {
    expect(wasmEscapeAvailable).toBe(true);
  });

  it('writes the same bytes as JSON.stringify for valid UTF-8 split anywhere', () => {
    fc.assert(
      fc.property(terminalText, fc.array(fc.nat(), { maxLength: 5 }), (text, cuts) => {
        const chunks = cut(Buffer.from(text, 'utf8'), cuts);
        const got = escapeJsonBytes(chunks).toString('utf8');
        expect(got).toBe(JSON.stringify(text).slice(1, -1));
      }),
      { numRuns: 2000 },
    );
  });

  it('escapes every byte value below 0x80 as JSON.stringify does, in a block and in the tail', () => {
    const all = Buffer.from(Array.from({ length: 128 }, (_, i) => i));
    for (const buf of [all, all.subarray(0, 15), Buffer.concat([Buffer.alloc(13, 'a'), all])]) {
      expect(escapeJsonBytes([buf]).toString('utf8')).toBe(JSON.stringify(buf.toString('latin1')).slice(1, -1));
    }
  });

  it('handles a batch larger than the memory it started with', () => {
    const big = Buffer.from('"\\\n'.repeat(200_000));
    const got = escapeJsonBytes([big]);
    expect(got.length).toBe(big.length * 2);
    expect(JSON.parse(`"${got.toString('utf8')}"`)).toBe(big.toString('utf8'));
  });
});

describe('asciicast output events', () => {
  it('replay to the exact output, whatever mix of byte and text chunks the tap sends', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(terminalText, fc.boolean()), { maxLength: 30 }), async (parts) => {
        const path = join(dir, `out-${n++}.cast`);
        const w = await AsciicastWriter.create(`t${n}`, path, { width: 80, height: 24, env: {}, title: 't' });
        for (const [text, asBytes] of parts) {
          if (asBytes) w.outputUtf8(Buffer.from(text, 'utf8'));
          else w.output(text);
        }
        await w.close('done');
        const lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
        const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
        const out = events.filter((e) => e[1] === 'o').map((e) => e[2]).join('');
        expect(out).toBe(parts.map((p) => p[0]).join(''));
        expect(events.at(-1)).toEqual([expect.any(Number), 'm', 'end: done']);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps a 3 MiB burst of output in order and readable by asciinema cat', async () => {
    const path = join(dir, 'burst.cast');
    const w = await AsciicastWriter.create('burst', path, { width: 80, height: 24, env: {}, title: 't' });
    const line = (i: number) => `line ${i} "quoted" \\ tab\there ünïcode ✓\n`;
    let expected = '';
    for (let i = 0; i < 60_000; i++) {
      expected += line(i);
      w.outputUtf8(Buffer.from(line(i), 'utf8'));
    }
    await w.close('done');
    // asciinema cat needs a terminal: `script` gives it one, whose line discipline turns \n into \r\n.
    const out = execFileSync('script', ['-qec', `asciinema cat ${path}`, '/dev/null'], { maxBuffer: 64 * 1024 * 1024 }).toString('utf8');
    expect(out.replaceAll('\r\n', '\n')).toBe(expected);
  });
});

describe('committed WebAssembly binaries', () => {
  it('are what escape.wat and ascii-scan.wat assemble to (npm run build:wasm)', () => {
    // Throws (exit 1) when a .wasm differs from its source.
    execFileSync('node', ['scripts/build-wasm.mjs', '--check'], { stdio: 'pipe' });
  });
});

describe('ChannelTap output into the recording', () => {
  it('records what a streaming UTF-8 decoder makes of the bytes, however the chunks split them', async () => {
    const { ChannelTap } = await import('../../proxy/ssh/channel-tap.js');
    // Valid text, emoji split anywhere, stray continuation bytes, truncated sequences, binary.
    const piece = fc.oneof(
      terminalText.map((t) => Buffer.from(t, 'utf8')),
      fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)),
      fc.constantFrom(Buffer.from([0xf0, 0x9f]), Buffer.from([0x98]), Buffer.from([0x80]), Buffer.from([0xe2, 0x82]), Buffer.from([0xc3])),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { maxLength: 25 }), async (chunks) => {
        const path = join(dir, `tap-${n++}.cast`);
        const w = await AsciicastWriter.create(`tap${n}`, path, { width: 80, height: 24, env: {}, title: 't' });
        const tap = new ChannelTap(w, { maskUnechoed: false });
        for (const c of chunks) tap.output(Buffer.from(c));
        tap.flush();
        await w.close('done');
        const events = (await readFile(path, 'utf8')).trimEnd().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]);
        const out = events.filter((e) => e[1] === 'o').map((e) => e[2]).join('');
        expect(out).toBe(new TextDecoder().decode(Buffer.concat(chunks)));
      }),
      { numRuns: 400 },
    );
  });
});
