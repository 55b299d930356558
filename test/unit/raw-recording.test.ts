import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, encodeHeader, FrameType, RawFormatError, RawFrameParser, type RawFrame } from '../../recorder/raw-frame.js';
import { RawWriter } from '../../recorder/raw-writer.js';
import { rawCastEvents, rawCastIndex, rawCastWindow, rawStreamBytes, rawSummary, TextClassifier } from '../../recorder/raw-reader.js';
import { FileContent } from '../../proxy/ssh/file-content.js';
import { ScpTransfer } from '../../proxy/ssh/scp-transfer.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const header = encodeHeader({ version: 1, timestamp: 1_700_000_000_000, title: 't', width: 80, height: 24 });

function parseAll(file: Buffer, cuts: number[]): { frames: RawFrame[]; parser: RawFrameParser } {
  const parser = new RawFrameParser();
  const frames: RawFrame[] = [];
  let at = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < file.length)].sort((a, b) => a - b).concat(file.length)) {
    parser.push(file.subarray(at, c), frames);
    at = c;
  }
  return { frames, parser };
}

describe('raw frame codec', () => {
  it('parses the same frames however the file is split into chunks', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 300 })), { maxLength: 10 }),
      fc.array(fc.nat(4000), { maxLength: 8 }),
      (specs, cuts) => {
        const frames = specs.map(([stream, ch, data], i) => encodeFrame(FrameType.Data, stream, ch, i * 7, Buffer.from(data)));
        const file = Buffer.concat([header, ...frames]);
        const { frames: got, parser } = parseAll(file, cuts);
        expect(parser.pending).toBe(0);
        expect(got.map((f) => [f.stream, f.channel, f.t, Buffer.from(f.payload).toString('hex')])).toEqual(specs.map(([s, c, d], i) => [s, c, i * 7, Buffer.from(d).toString('hex')]));
      },
    ));
  });

  it('a torn last frame is left pending, never reported as a frame', () => {
    const file = Buffer.concat([header, encodeFrame(FrameType.Data, 1, 0, 5, Buffer.from('whole')), encodeFrame(FrameType.Data, 1, 0, 6, Buffer.from('torn-frame'))]);
    const { frames, parser } = parseAll(file.subarray(0, file.length - 3), []);
    expect(frames.map((f) => f.payload.toString())).toEqual(['whole']);
    expect(parser.pending).toBeGreaterThan(0);
  });

  it('random bytes after the header never crash or hang: frames or a RawFormatError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(2000), { maxLength: 4 }), (junk, cuts) => {
      try {
        parseAll(Buffer.concat([header, Buffer.from(junk)]), cuts);
      } catch (err) {
        expect(err).toBeInstanceOf(RawFormatError);
      }
    }));
    expect(() => parseAll(Buffer.from('{"version":2}\n[0,"o","x"]\n'), [])).toThrow(RawFormatError);
  });
});

describe('RawWriter and readers', () => {
  it('round-trips every stream byte for byte, renders binary once as a note, and seals the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'raw-unit-'));
    try {
      const path = join(dir, 'x.raw');
      const w = await RawWriter.create('id1', path, { title: 'x', width: 80, height: 24 });
      const ch = w.channel({ kind: 'raw' });
      const out = randomBytes(200_000);
      const parts: Buffer[] = [];
      for (let at = 0; at < out.length; at += 32_768) parts.push(out.subarray(at, at + 32_768));
      w.data(ch, 'stdin', Buffer.from('ls -l\n'));
      for (const p of parts) w.data(ch, 'stdout', Buffer.from(p));
      w.data(ch, 'stderr', Buffer.from('oops\n'));
      w.marker('exit status 0');
      await w.close('done');
      const file = await readFile(path);
      expect(w.sha256).toBe(sha(file));
      const collect = async (s: 'stdin' | 'stdout' | 'stderr') => { const b: Buffer[] = []; for await (const x of rawStreamBytes(path, s)) b.push(x); return Buffer.concat(b); };
      expect((await collect('stdout')).equals(out)).toBe(true);
      expect((await collect('stdin')).toString()).toBe('ls -l\n');
      expect((await collect('stderr')).toString()).toBe('oops\n');
      expect(file.length).toBeLessThan(out.length * 1.01 + 400);
      const ev = [];
      for await (const e of rawCastEvents(path)) ev.push(e);
      expect(ev.filter((e) => e[2].includes('binary stdout'))).toHaveLength(1);
      expect(ev).toContainEqual([expect.any(Number), 'i', 'ls -l\n']);
      expect(ev).toContainEqual([expect.any(Number), 'm', 'end: done']);
      const s = await rawSummary(path);
      expect(s.channels[0]!.streams.stdout).toMatchObject({ bytes: out.length, sha256: sha(out), binary: true });
      expect(s.channels[0]!.streams.stderr).toMatchObject({ binary: false });

      // Truncated by a crash: everything before the torn frame is still read.
      await writeFile(join(dir, 'torn.raw'), file.subarray(0, file.length - 5));
      const torn = await rawSummary(join(dir, 'torn.raw'));
      expect(torn.truncated).toBe(true);
      expect(torn.channels[0]!.streams.stdout!.bytes).toBe(out.length);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a window of the rendered recording: keyframe of the output before it, its events shifted to 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'raw-win-'));
    try {
      const path = join(dir, 'w.raw');
      const w = await RawWriter.create('id2', path, { title: 'w', width: 100, height: 30 });
      const t0 = Date.now();
      const ch = w.channel({ kind: 'raw' });
      for (let i = 0; i < 10; i++) w.data(ch, 'stdout', Buffer.from(`line-${i}\n`), t0 + i * 1000 + 1);
      await w.close('done');
      const lines = (await rawCastWindow(path, 4.5, 2)).trim().split('\n').map((l) => JSON.parse(l));
      expect(lines[0]).toMatchObject({ version: 2, width: 100, height: 30 });
      expect(lines[1][1]).toBe('o');
      expect(lines[1][2]).toContain('line-4');
      expect(lines[1][2]).not.toContain('line-5');
      expect(lines.slice(2).map((e) => e[2])).toEqual(['line-5\r\n', 'line-6\r\n']);
      expect(lines[2][0]).toBeGreaterThan(0);
      expect(lines[2][0]).toBeLessThan(1);
      const idx = await rawCastIndex(path);
      expect(idx.checkpoints[0]).toMatchObject({ offset: 0 });
      expect(idx.duration).toBeGreaterThanOrEqual(9);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a live raw recording is followed as rendered asciicast lines (the live view)', async () => {
    const { tailRecording } = await import('../../recorder/tail.js');
    const dir = await mkdtemp(join(tmpdir(), 'raw-tail-'));
    try {
      const path = join(dir, 't.raw');
      const w = await RawWriter.create('id3', path, { title: 't', width: 80, height: 24 });
      const ch = w.channel({ kind: 'raw' });
      w.data(ch, 'stdout', Buffer.from('first-line\n'));
      await w.drained();
      let ended = false;
      const got: string[] = [];
      const tail = (async () => { for await (const block of tailRecording(path, { format: 'raw', ended: () => ended, pollMs: 10 })) got.push(...block.split('\n')); })();
      await new Promise((r) => setTimeout(r, 60));
      w.data(ch, 'stdout', Buffer.from([0, 1, 2]));
      w.marker('exit status 0');
      await w.close('done');
      ended = true;
      await tail;
      expect(JSON.parse(got[0]!)).toMatchObject({ version: 2 });
      const ev = got.slice(1).map((l) => JSON.parse(l));
      expect(ev.map((e) => e[2])).toEqual(['first-line\r\n', expect.stringContaining('binary stdout'), 'exit status 0', 'end: done']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('TextClassifier keeps UTF-8 split across chunks as text, calls NUL or invalid bytes binary', () => {
    const c = new TextClassifier();
    const e = Buffer.from('é');
    expect(c.feed(e.subarray(0, 1))).toBe('');
    expect(c.feed(e.subarray(1))).toBe('é');
    expect(c.binary).toBe(false);
    expect(new TextClassifier().feed(Buffer.from([0x41, 0]))).toBeUndefined();
    const bad = new TextClassifier();
    bad.feed(Buffer.from([0xff, 0x41]));
    expect(bad.binary).toBe(true);
  });
});

describe('FileContent', () => {
  it('hashes pieces given in any order as the file in order', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 5000 }), fc.array(fc.nat(5000), { maxLength: 10 }), fc.integer(), (data, cuts, seed) => {
      const buf = Buffer.from(data);
      const points = [...new Set([0, ...cuts.filter((c) => c < buf.length), buf.length])].sort((a, b) => a - b);
      const pieces = points.slice(0, -1).map((p, i) => [p, buf.subarray(p, points[i + 1])] as const);
      const order = pieces.map((p, i) => [p, (i * 7919 + seed) % 101] as const).sort((a, b) => a[1] - b[1]).map((x) => x[0]);
      const fcn = new FileContent();
      for (const [off, piece] of order) fcn.write(off, piece);
      expect(fcn.finish()).toEqual({ size: buf.length, sha256: sha(buf) });
    }));
  });

  it('a range sent twice or never gives no SHA-256 rather than a wrong one', () => {
    const twice = new FileContent();
    twice.write(0, Buffer.from('abcd'));
    twice.write(2, Buffer.from('cd'));
    expect(twice.finish().sha256).toBeUndefined();
    const gap = new FileContent();
    gap.write(0, Buffer.from('ab'));
    gap.write(5, Buffer.from('fg'));
    expect(gap.finish()).toMatchObject({ size: 2, why: expect.stringContaining('never passed') });
  });
});

describe('ScpTransfer', () => {
  const stream = (files: [string, Buffer][]) => Buffer.concat([
    Buffer.from('D0755 0 dir\n'),
    ...files.flatMap(([n, c]) => [Buffer.from(`T1 0 1 0\nC0644 ${c.length} ${n}\n`), c, Buffer.from([0])]),
    Buffer.from('E\n'),
  ]);

  it('reports each file with its SHA-256 at every split of the stream', () => {
    const files: [string, Buffer][] = [['a.bin', randomBytes(300)], ['empty', Buffer.alloc(0)], ['b.txt', Buffer.from('hello\n')]];
    const all = stream(files);
    for (let cut = 0; cut <= all.length; cut += 7) {
      const got: [string, string | undefined][] = [];
      const t = new ScpTransfer('upload', '/srv', (f, d) => got.push([f.path, d.sha256]), () => { throw new Error('broken'); });
      t.feed(all.subarray(0, cut));
      t.feed(all.subarray(cut));
      expect(got).toEqual(files.map(([n, c]) => [`/srv/dir/${n}`, sha(c)]));
    }
  });

  it('refuses a name with a slash (no path outside the target) and a cut-off file has no SHA-256', () => {
    const why: string[] = [];
    const t = new ScpTransfer('upload', '/srv/x', () => {}, (w) => why.push(w));
    t.feed(Buffer.from('C0644 3 ../etc/passwd\n'));
    expect(t.broken).toBe(true);
    expect(why).toHaveLength(1);
    const got: unknown[] = [];
    const cut = new ScpTransfer('upload', '/srv/x', (_f, d) => got.push(d), () => {});
    cut.feed(Buffer.from('C0644 10 x\nabc'));
    cut.end();
    expect(got).toEqual([expect.objectContaining({ size: 3, why: expect.stringContaining('3 of 10') })]);
  });
});

describe('raw rendering of line ends (display only)', () => {
  it('a channel without a pty shows bare \\n as \\r\\n (a CRLF split across frames is not doubled); a pty channel and stdin are left as sent', async () => {
    const { RawCastRenderer } = await import('../../recorder/raw-reader.js');
    const ch = (n: number, info: object) => encodeFrame(FrameType.Channel, 0, n, 0, Buffer.from(JSON.stringify(info)));
    const data = (n: number, stream: number, s: string) => encodeFrame(FrameType.Data, stream, n, 1, Buffer.from(s));
    const file = Buffer.concat([header, ch(0, { kind: 'exec' }), ch(1, { kind: 'shell', pty: true }),
      data(0, 1, '1\n2\n'), data(0, 1, 'a\r'), data(0, 1, '\nb\r\n'), data(0, 2, 'err\n'), data(0, 0, 'in\n'), data(1, 1, 'pty\n')]);
    const r = new RawCastRenderer();
    const got = parseAll(file, []).frames.map((f) => r.frame(f)).filter((e) => e).map((e) => e![2]);
    expect(got).toEqual(['1\r\n2\r\n', 'a\r', '\nb\r\n', 'err\r\n', 'in\n', 'pty\n']);
  });
});
