import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { RecordingFile, recordingWriteBacklog } from '../../recorder/recording-file.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

it('counts what open recordings have accepted but not written, and for how long, until it is on disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pam-backlog-'));
  dirs.push(dir);
  const base = recordingWriteBacklog();
  // A long flush interval, so the bytes wait in the stage; thread-pool writes, so the write takes a turn.
  const f = await RecordingFile.create(join(dir, 'a.cast'), 60_000, { poolWrites: true });
  f.append('x'.repeat(1000));
  const t0 = performance.now();
  const waiting = recordingWriteBacklog(t0 + 500);
  expect(waiting.files).toBe(base.files + 1);
  expect(waiting.bytes - base.bytes).toBe(1000);
  expect(waiting.lagMs).toBeGreaterThanOrEqual(500);
  await f.flush();
  expect(recordingWriteBacklog().bytes - base.bytes).toBe(0);
  expect(f.written).toBe(1000);
  await f.close();
  expect(recordingWriteBacklog().files).toBe(base.files);
});
