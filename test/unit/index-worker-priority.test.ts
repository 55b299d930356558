import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordingCatalog } from '../../recorder/catalog.js';
import { LiveIndex } from '../../recorder/index/live-index.js';

/** Each thread of this process: its nice value and scheduling policy (/proc/self/task/TID/stat fields 19 and 41). */
async function threads(): Promise<{ tid: string; nice: number; policy: number }[]> {
  const out = [];
  for (const tid of await readdir('/proc/self/task')) {
    const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push({ tid, nice: Number(f[16]), policy: Number(f[38]) });
  }
  return out;
}

const SCHED_IDLE = 5;
let dir = '';
afterEach(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

describe.runIf(process.platform === 'linux')('index worker priority', () => {
  it('runs the index worker thread under SCHED_IDLE at nice 19, and nothing else of the process', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-prio-'));
    expect((await threads()).filter((t) => t.policy === SCHED_IDLE)).toEqual([]);
    const catalog = await RecordingCatalog.open(join(dir, 'recordings'));
    const index = await LiveIndex.start({ dataDir: dir, catalog, onLog: () => undefined });
    try {
      const idle = (await threads()).filter((t) => t.policy === SCHED_IDLE);
      expect(idle).toHaveLength(1);
      expect(idle[0]!.nice).toBe(19);
      // The process's own thread (tid = pid) keeps the normal policy.
      expect((await threads()).find((t) => t.tid === String(process.pid))?.policy).toBe(0);
    } finally {
      await index.close();
    }
  });
});
