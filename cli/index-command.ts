import { join } from 'node:path';
import { loadConfig } from '../config/config.js';
import { openIndexFile } from '../recorder/index/index-file.js';
import { Indexer } from '../recorder/index/indexer.js';
import type { SqliteIndexStore } from '../recorder/index/sqlite-index.js';
import { CliError } from './api-client.js';

/** A proxy's index worker writes its pid and a heartbeat every 2 s; older than this, it is gone. */
const OWNER_STALE_MS = 10_000;

function runningOwner(store: SqliteIndexStore): number | undefined {
  try {
    const o = JSON.parse(store.getInfo('owner') ?? '{}') as { pid?: number; beat?: number };
    if (!o.pid || !o.beat || Date.now() - o.beat > OWNER_STALE_MS) return undefined;
    process.kill(o.pid, 0);
    return o.pid;
  } catch {
    return undefined;
  }
}

/**
 * `pam index rebuild`: reads every recording in data_dir into the index again, whether or not a
 * proxy runs. Beside a running proxy (its worker's heartbeat is fresh) live recordings are left
 * to the proxy, which follows them; without one they are read as they are. A damaged index file
 * is replaced. Searches keep working meanwhile: each recording is swapped in one transaction.
 */
export async function indexCommand(configFile: string, args: string[], json: boolean): Promise<void> {
  if (args[0] !== 'rebuild') throw new CliError('usage: pam index rebuild [--config FILE] [--json]', 2);
  const config = loadConfig(configFile);
  const path = join(config.dataDir, 'index.sqlite');
  const t0 = Date.now();
  const { store, reset } = openIndexFile(path, { check: true });
  try {
    if (reset && !json) process.stderr.write(`pam: the index was damaged (${reset}); starting it afresh\n`);
    const owner = runningOwner(store);
    let skipped = 0;
    const indexer = new Indexer(store, join(config.dataDir, 'recordings'));
    let shown = 0;
    const p = await indexer.sync({
      all: true,
      skip: owner ? (m) => (m.status === 'live' ? (skipped++, true) : false) : undefined,
      onProgress: (pr) => {
        if (json || !process.stderr.isTTY || pr.done - shown < 500) return;
        shown = pr.done;
        process.stderr.write(`\r${pr.done}/${pr.total}`);
      },
    });
    if (shown) process.stderr.write('\n');
    const result = { recordings: p.done - skipped, skipped_live: skipped, proxy_pid: owner ?? null, seconds: (Date.now() - t0) / 1000, reset: reset ?? null };
    process.stdout.write(json ? JSON.stringify(result, null, 2) + '\n'
      : `indexed ${result.recordings} recordings in ${result.seconds.toFixed(1)} s${owner ? ` (proxy ${owner} running: ${skipped} live recordings left to it)` : ''}\n`);
  } finally {
    store.close();
  }
}
