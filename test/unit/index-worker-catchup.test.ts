import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordingCatalog } from '../../recorder/catalog.js';
import { LiveIndex } from '../../recorder/index/live-index.js';
import type { WorkerIn, WorkerOut } from '../../recorder/index/index-worker.types.js';
import { parseQuery } from '../../recorder/index/query-text.js';

/**
 * The worker's catch-up with the recordings folder (a start-up rebuild can take minutes at 10^5
 * recordings) must leave room for the worker's other work: ticks of live recordings, catalog
 * writes, a reset of a damaged file, closing. These tests drive a real worker thread over
 * recordings written to disk, and send it messages while its catch-up runs.
 */
const N = 600;
const start = Date.parse('2026-12-01T10:00:00Z');
let dir = '';
afterEach(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

async function folder(): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'pam-catchup-'));
  const recs = join(dir, 'recordings');
  mkdirSync(recs, { recursive: true });
  for (let i = 0; i < N; i++) {
    const id = `0mx5c${String(i).padStart(4, '0')}-a7b17b3c`;
    const t = new Date(start + i * 1000).toISOString();
    writeFileSync(join(recs, `${id}.meta.json`), JSON.stringify({ id, protocol: 'postgres', format: 'jsonl', user: 'dana', subject: 'dana', login: 'app', target: 'db1', start: t, end: t, bytes: 0, status: 'ended' }));
    let body = '';
    for (let k = 0; k < 20; k++) body += `${JSON.stringify({ t, type: 'statement', protocol: 'simple', sql: `SELECT ${k} AS wombat${i}`, tag: 'SELECT 1', rows: 1, verdict: { action: 'allow' } })}\n`;
    writeFileSync(join(recs, `${id}.jsonl`), body);
  }
  return recs;
}

/** The worker's messages in order, and a way to send it one (the class keeps `send` to itself). */
function watch(index: LiveIndex): { seen: WorkerOut[]; send: (m: WorkerIn) => void } {
  const seen: WorkerOut[] = [];
  index.onEvent = (m) => seen.push(m);
  return { seen, send: (m) => (index as unknown as { send: (m: WorkerIn) => void }).send(m) };
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 3000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};
const building = (m: WorkerOut) => m.type === 'status' && m.building && m.done > 0;

describe('the index worker catching up with the folder', () => {
  it('handles a close sent while it catches up before the catch-up ends (messages are not held behind it)', async () => {
    const recs = await folder();
    const catalog = await RecordingCatalog.open(recs);
    const index = await LiveIndex.start({ dataDir: dir, catalog, onLog: () => undefined });
    const { seen } = watch(index);
    await until(() => seen.some(building), 'the catch-up to begin');
    await index.close();
    const statuses = seen.filter((m): m is Extract<WorkerOut, { type: 'status' }> => m.type === 'status');
    // The close stopped the catch-up between two recordings: the last progress is short of all.
    expect(statuses.at(-1)!.total).toBe(N);
    expect(statuses.at(-1)!.done).toBeLessThan(N);
  });

  it('a reset during the catch-up starts the catch-up over on the new file, without errors, and ends with every recording', async () => {
    const recs = await folder();
    const catalog = await RecordingCatalog.open(recs);
    const logged: string[] = [];
    const index = await LiveIndex.start({ dataDir: dir, catalog, onLog: (level, msg) => logged.push(`${level} ${msg}`) });
    try {
      const { seen, send } = watch(index);
      await until(() => seen.some(building), 'the catch-up to begin');
      send({ type: 'damaged', why: 'damage planted by the test' });
      // The fault fired: the worker started afresh.
      await until(() => index.resets.includes('damage planted by the test'), 'the reset');
      // Then a pass over the reopened file (the planted damage left it readable, so what the
      // first pass wrote stays and the rest is caught up) ends in ready.
      const resetAt = seen.findIndex((m) => m.type === 'reset');
      await until(() => seen.slice(resetAt).some((m) => m.type === 'status' && !m.building), 'the catch-up after the reset');
      expect(seen.filter((m) => m.type === 'error')).toEqual([]);
      expect(logged.filter((l) => l.startsWith('error'))).toEqual([]);
      // Every recording is in the index, the ones read before the reset and after.
      for (const i of [0, 1, N / 2, N - 2, N - 1]) expect((await index.search({ match: parseQuery(`wombat${i}`).match, limit: 50 })).hits.length).toBe(20);
    } finally {
      await index.close();
    }
  });
});
