import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeFrame, encodeHeader, FRAME_HEADER, FrameType } from '../../recorder/raw-frame.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { MAX_OUTPUT_CHARS } from '../../recorder/index/extract-asciicast.js';
import { Indexer } from '../../recorder/index/indexer.js';
import { SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import { parseQuery } from '../../recorder/index/query-text.js';

const root = mkdtempSync(join(tmpdir(), 'pam-index-raw-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const start = Date.parse('2026-12-01T10:00:00Z');
const FRAME = 64 * 1024; // what the raw writer batches

function setup(body: Buffer, status: 'live' | 'ended', id = `0mx5cxr${String(n).padStart(2, '0')}-b7b17b3c`) {
  const dir = join(root, `d${n++}`);
  const rec = join(dir, 'recordings');
  mkdirSync(rec, { recursive: true });
  const meta: RecordingMeta = { id, protocol: 'ssh', format: 'raw', user: 'dana', subject: 'dana', login: 'root', target: 'prod-web', start: new Date(start).toISOString(), bytes: body.length, status };
  writeFileSync(join(rec, `${meta.id}.raw`), body);
  writeFileSync(join(rec, `${meta.id}.meta.json`), JSON.stringify(meta));
  return { dir, rec, meta, path: join(rec, `${meta.id}.raw`), store: new SqliteIndexStore(join(dir, 'index.sqlite')) };
}
const hits = (s: SqliteIndexStore, words: string, kinds?: ('output' | 'marker' | 'input' | 'command')[]) =>
  s.search({ match: parseQuery(words).match, limit: 10, ...(kinds ? { kinds } : {}) }).hits;
const head = encodeHeader({ version: 1, timestamp: start, title: 't', width: 80, height: 24 });
const chan = (c: number, kind: string, label: string) => encodeFrame(FrameType.Channel, 0, c, 0, Buffer.from(JSON.stringify({ kind, label })));
const marker = (c: number, t: number, text: string) => encodeFrame(FrameType.Marker, 0, c, t, Buffer.from(text));
const data = (stream: number, c: number, t: number, b: Buffer) => encodeFrame(FrameType.Data, stream, c, t, b);
/** `frames` Data frames of FRAME random bytes (a NUL first: binary from the first byte). */
function binary(stream: number, c: number, t: number, frames: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < frames; i++) {
    const b = randomBytes(FRAME);
    b[0] = 0;
    out.push(data(stream, c, t + i, b));
  }
  return out;
}

/** A download of 12.5 MiB of binary stdout on channel 0, an upload of 6 MiB of binary stdin on channel 1 (a `tar xf -`), then text. */
function transfer(): Buffer {
  return Buffer.concat([
    head,
    chan(0, 'exec', 'cat blob'),
    marker(0, 1, 'exec: cat blob'),
    data(1, 0, 2, Buffer.from('starting-the-dump\n')),
    ...binary(1, 0, 3, 200),
    marker(0, 500, 'exit status 0'),
    chan(1, 'exec', 'tar xf -'),
    marker(1, 600, 'exec: tar xf -'),
    ...binary(0, 1, 601, 96),
    data(1, 1, 900, Buffer.from('tar-says-done\n')),
    chan(2, 'exec', 'echo after'),
    marker(2, 1000, 'exec: echo after'),
    data(1, 2, 1001, Buffer.from('the-word-after\n')),
  ]);
}
/**
 * What reading costs at most: every frame header, the first frame of each binary stream (read to
 * find it binary), and a read-ahead of at most 64 KiB at each start of a scan and after each text
 * frame (few here).
 */
const bound = (body: Buffer, scans: number) => (body.length / FRAME) * FRAME_HEADER + 2 * FRAME + (scans + 12) * 64 * 1024;

describe('raw recordings: binary streams are skipped unread', () => {
  it('indexes the binary marker and everything after a 12.5 MiB download and a 6 MiB upload, reading a fraction of the file', async () => {
    const body = transfer();
    const { rec, store } = setup(body, 'ended');
    const ix = new Indexer(store, rec);
    await ix.sync({ all: true });
    expect(hits(store, 'binary stdout on channel 0', ['marker'])).toHaveLength(1);
    expect(hits(store, 'starting-the-dump', ['output'])).toHaveLength(1);
    expect(hits(store, 'tar-says-done', ['output'])).toHaveLength(1);
    expect(hits(store, 'the-word-after', ['output'])).toHaveLength(1);
    const cmds = store.search({ kinds: ['command'], limit: 10 }).hits.reverse().map((h) => [h.command!.text, h.command!.outcome]);
    expect(cmds).toEqual([['cat blob', 'exit 0'], ['tar xf -', undefined], ['echo after', undefined]]);
    expect(body.length).toBeGreaterThan(18 * 1024 * 1024);
    // 296 frames of 64 KiB: their headers, not their payloads.
    expect(ix.bytesRead).toBeLessThan(bound(body, 1));
    expect(ix.bytesRead).toBeLessThan(body.length / 40);
    store.close();
  });

  it('the same while the file grows, in ticks with a byte budget, and equal to the file read whole', async () => {
    const body = transfer();
    const whole = setup(body, 'ended');
    await new Indexer(whole.store, whole.rec).sync({ all: true });
    const live = setup(Buffer.alloc(0), 'live', whole.meta.id);
    const ix = new Indexer(live.store, live.rec, { tickBytes: 32 * 1024 });
    await ix.onMeta(live.meta);
    let scans = 0;
    // Pieces cut anywhere, frames torn across them.
    for (let at = 0; at < body.length; at += 777_777) {
      appendFileSync(live.path, body.subarray(at, at + 777_777));
      do {
        await ix.tick();
        scans++;
      } while (ix.behind);
    }
    const ended = { ...live.meta, status: 'ended' as const, end: new Date(start + 2000).toISOString() };
    writeFileSync(join(live.rec, `${live.meta.id}.meta.json`), JSON.stringify(ended));
    await ix.onMeta(ended);
    while (ix.behind) await ix.tick();
    expect(ix.following).toEqual([]);
    expect(hits(live.store, 'the-word-after', ['output'])).toHaveLength(1);
    expect(hits(live.store, 'binary stdout on channel 0', ['marker'])).toHaveLength(1);
    expect(live.store.dump().docs).toEqual(whole.store.dump().docs);
    expect(ix.bytesRead).toBeLessThan(bound(body, scans + 1));
    expect(ix.bytesRead).toBeLessThan(body.length / 10);
    live.store.close();
    whole.store.close();
  });

  it('past the output cap text payloads are skipped too, and a torn last frame is not taken for a change at the next start', async () => {
    const text = Buffer.from(`${'QUJDRA'.repeat(10)}\n`.repeat(FRAME / 61)).subarray(0, FRAME);
    const frames: Buffer[] = [];
    for (let i = 0; i < Math.ceil((MAX_OUTPUT_CHARS * 2) / FRAME); i++) frames.push(data(1, 0, 10 + i, text));
    const torn = data(1, 0, 900, text).subarray(0, 5000);
    const body = Buffer.concat([head, chan(0, 'exec', 'cat big.txt'), marker(0, 1, 'exec: cat big.txt'), ...frames, marker(0, 800, 'exit status 3'), torn]);
    const { rec, store } = setup(body, 'ended');
    const ix = new Indexer(store, rec);
    await ix.sync({ all: true });
    expect(hits(store, 'not indexed', ['marker'])).toHaveLength(1);
    expect(store.search({ kinds: ['command'], limit: 5 }).hits[0]!.command).toMatchObject({ text: 'cat big.txt', outcome: 'exit 3' });
    expect(ix.bytesRead).toBeLessThan(MAX_OUTPUT_CHARS + bound(body, 1));
    expect(ix.stale().changed).toEqual([]);
    store.close();
  });
});
