import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { SYNC_MS } from '../../recorder/file-sync.js';
import { RecordingFile } from '../../recorder/recording-file.js';

const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), 'pam-recfile-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * Appends of every kind and size: small events, multi-byte text, views, stage-sized and larger
 * blocks, handed-over packets (appendOwned) below and above the size it queues as they are.
 * Resolves with the bytes the file must hold, in order.
 */
async function fill(file: RecordingFile): Promise<Buffer> {
  const want: Buffer[] = [];
  for (let i = 0; i < 3000; i++) {
    const line = `[${i}, "o", "line ${i} ✓"]\n`;
    file.append(line);
    want.push(Buffer.from(line));
    if (i % 100 === 0) {
      const b = Buffer.alloc(70_000 + i, 0x61 + (i % 26));
      file.appendCopy(b);
      want.push(b);
    }
    if (i % 700 === 0) {
      const b = Buffer.alloc(300_000 + i, 0x30 + (i % 10));
      file.append(b);
      want.push(b);
    }
    if (i % 7 === 0) {
      const b = Buffer.alloc(i % 2 ? 32 * 1024 : 3000, 0x41 + (i % 26));
      file.appendOwned(b);
      want.push(b);
    }
    if (i % 500 === 0) await file.flush();
  }
  return Buffer.concat(want);
}

describe('RecordingFile', () => {
  it('keeps bytes appended while close is flushing, and seals them (no flush after the digest)', async () => {
    for (const poolWrites of [false, true]) {
      const path = join(dir, `late-${poolWrites}`);
      const file = await RecordingFile.create(path, 50, { poolWrites });
      file.append('before close\n');
      const closing = file.close();
      // A session's last output can arrive after the broker began sealing (its timer would
      // then have flushed into a finished hash).
      file.append('during close\n');
      const digest = await closing;
      await new Promise((r) => setTimeout(r, 120)); // past the flush timer the late append set
      const bytes = await readFile(path);
      expect(bytes.toString()).toBe('before close\nduring close\n');
      expect(digest).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
  });

  it('writes the same bytes, with a seal that matches them, on the event loop and through the thread pool', async () => {
    const sync = await RecordingFile.create(join(dir, 'sync'));
    const pool = await RecordingFile.create(join(dir, 'pool'), 250, { poolWrites: true });
    const [want] = await Promise.all([fill(sync), fill(pool)]);
    const [a, b] = [await sync.close(), await pool.close()];
    const [fa, fb] = [await readFile(join(dir, 'sync')), await readFile(join(dir, 'pool'))];
    expect(fa.equals(want)).toBe(true);
    expect(fa.equals(fb)).toBe(true);
    expect(fa.length).toBe(sync.bytes);
    expect(a).toBe(createHash('sha256').update(fa).digest('hex'));
    expect(b).toBe(a);
  });

  it('has the bytes of a busy session in the file before the next flush timer (a crash loses at most that)', async () => {
    const file = await RecordingFile.create(join(dir, 'busy'), 60_000);
    for (let i = 0; i < 200; i++) file.append(`[${i}, "o", "${'x'.repeat(2000)}"]\n`);
    // 400 KB appended: past the write threshold, so most of it is in the file already.
    expect((await readFile(join(dir, 'busy'))).length).toBeGreaterThanOrEqual(256 * 1024);
    await file.close();
  });

  it('reports a failed write (file size limit) to its owner and refuses to seal', async () => {
    // A file size limit stands in for a full disk: the kernel refuses writes past it (EFBIG).
    const script = join(dir, 'limited.mts');
    const mod = resolve('recorder/recording-file.ts');
    await writeFile(script, `
      import { RecordingFile } from ${JSON.stringify(mod)};
      const file = await RecordingFile.create(${JSON.stringify(join(dir, 'limited'))});
      let reported = '';
      file.onError = (e) => (reported = (e as NodeJS.ErrnoException).code ?? e.message);
      for (let i = 0; i < 100; i++) file.append('x'.repeat(10_000) + '\\n');
      await file.flush();
      await new Promise((r) => setTimeout(r, 10));
      let closed = 'sealed';
      try { await file.close(); } catch (e) { closed = (e as NodeJS.ErrnoException).code ?? 'error'; }
      console.log(JSON.stringify({ reported, closed, error: (file.error as NodeJS.ErrnoException | undefined)?.code }));
    `);
    const { stdout } = await run('bash', ['-c', `trap '' XFSZ; ulimit -f 64; exec node bin/run-ts.js ${script}`]);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ reported: 'EFBIG', closed: 'EFBIG', error: 'EFBIG' });
  });

  /** The file's handle, to count or fail its fdatasync calls (the handle is private to the class). */
  const handleOf = (f: RecordingFile) => (f as unknown as { fh: { datasync(): Promise<void> } }).fh;

  it('fdatasyncs what was written about a second later, without waiting for close, and leaves idle files alone', async () => {
    const file = await RecordingFile.create(join(dir, 'durable'), 50);
    const fh = handleOf(file);
    const real = fh.datasync.bind(fh);
    let calls = 0;
    fh.datasync = () => (calls++, real());
    file.append('typed before the power cut\n');
    await file.flush();
    expect(file.written).toBe(27);
    expect(file.synced).toBe(0);
    await vi.waitFor(() => expect(file.synced).toBe(27), { timeout: 10 * SYNC_MS, interval: 50 });
    expect(calls).toBe(1);
    // Nothing written since: later passes do not sync it again.
    await new Promise((r) => setTimeout(r, 2.5 * SYNC_MS));
    expect(calls).toBe(1);
    file.append('and after\n');
    await file.flush();
    await vi.waitFor(() => expect(file.synced).toBe(37), { timeout: 10 * SYNC_MS, interval: 50 });
    expect(calls).toBe(2);
    await file.close();
    expect((await readFile(join(dir, 'durable'))).toString()).toBe('typed before the power cut\nand after\n');
  });

  it('reports a failed fdatasync to its owner and refuses to seal (fail closed)', async () => {
    const file = await RecordingFile.create(join(dir, 'eio'), 50);
    let fired = 0;
    handleOf(file).datasync = () => {
      fired++;
      return Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    };
    let reported = '';
    file.onError = (e) => (reported = (e as NodeJS.ErrnoException).code ?? e.message);
    file.append('evidence\n');
    await file.flush();
    await vi.waitFor(() => expect(fired).toBe(1), { timeout: 10 * SYNC_MS, interval: 50 });
    await vi.waitFor(() => expect(reported).toBe('EIO'));
    expect(file.synced).toBe(0);
    await expect(file.close()).rejects.toMatchObject({ code: 'EIO' });
  });
});
