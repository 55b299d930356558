/**
 * Periodic fdatasync of the files recordings stream into. A write puts bytes in the page cache,
 * which survives the proxy being killed but not the machine losing power or its kernel: until
 * an fdatasync, those bytes are only as durable as the kernel's writeback (tens of seconds).
 * Here every file written since its last sync is synced again about SYNC_MS after the last
 * pass began, so a crash of the machine loses about the last second of a recording, as a crash
 * of the process does.
 *
 * One file at a time, on the thread pool: a slow disk then stretches the interval instead of
 * filling the pool (4 threads, shared with the audit log's own syncs and the session files'
 * opens). Idle files cost nothing: a file is queued only when a write lands.
 */

/** Aim for each written byte: durable this long after it was written, plus the pass's own time. */
export const SYNC_MS = 1000;

export interface Syncable {
  /** Makes everything written so far durable; never rejects (a failure is the file's own error). */
  syncNow(): Promise<void>;
}

const dirty = new Set<Syncable>();
let timer: NodeJS.Timeout | undefined;
let running = false;

/** Queues a file whose writes landed since its last sync. */
export function markWritten(file: Syncable): void {
  dirty.add(file);
  if (!timer && !running) timer = setTimeout(pass, SYNC_MS).unref();
}

/** Takes a closed file out of the queue (its close makes it durable itself). */
export function forget(file: Syncable): void {
  dirty.delete(file);
}

async function pass(): Promise<void> {
  timer = undefined;
  running = true;
  const started = performance.now();
  const files = [...dirty];
  dirty.clear();
  try {
    for (const f of files) await f.syncNow();
  } finally {
    running = false;
    if (dirty.size) timer = setTimeout(pass, Math.max(0, SYNC_MS - (performance.now() - started))).unref();
  }
}
