import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { assertNamespace, StoreError } from './store-shared.js';

/**
 * The embedded store's files: one `<namespace>.json` (0600) per namespace, format
 * `{"version":1,"entries":{"<key>":{"value":…,"expiresAt"?:ms}}}`, each with a single writer
 * that group-commits and replaces the file atomically.
 */

/** One key as held in memory: the value already encoded, so reads hand out fresh copies. */
export interface Entry {
  json: string;
  expiresAt?: number;
}

export const FILE_SUFFIX = '.json';
const TMP_SUFFIX = '.tmp';

export function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== undefined && entry.expiresAt <= now;
}

interface PendingWrite {
  resolve: () => void;
  reject: (err: unknown) => void;
  rollback?: () => void;
}

/** One namespace's entries and the single writer of its file. */
export class NamespaceFile {
  private pending: PendingWrite[] = [];
  private running: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly dir: string,
    readonly entries: Map<string, Entry>,
  ) {}

  persist(rollback?: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject, rollback });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    // `running` is cleared only after drain() settles, whether it awaited or not; anything
    // queued in between starts a new drain.
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.pending.length > 0) this.kick();
    });
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await atomicWrite(this.path, this.dir, this.serialise());
        for (const w of batch) w.resolve();
      } catch (err) {
        // Roll back before the next snapshot is taken, so memory never runs ahead of disk.
        for (const w of [...batch].reverse()) w.rollback?.();
        const error = new StoreError(`cannot write state file ${this.path}`, { cause: err });
        for (const w of batch) w.reject(error);
      }
    }
  }

  private serialise(): string {
    const parts: string[] = [];
    for (const [key, e] of this.entries) {
      const exp = e.expiresAt === undefined ? '' : `,"expiresAt":${e.expiresAt}`;
      parts.push(`${JSON.stringify(key)}:{"value":${e.json}${exp}}`);
    }
    return `{"version":1,"entries":{${parts.join(',\n')}}}\n`;
  }
}

async function atomicWrite(path: string, dir: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // The rename itself is only durable once the directory entry is.
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Loads every namespace file; any unreadable or malformed file fails the open. */
export async function loadAll(root: string): Promise<Map<string, NamespaceFile>> {
  const namespaces = new Map<string, NamespaceFile>();
  const now = Date.now();
  for (const name of await readdir(root)) {
    const path = join(root, name);
    if (name.endsWith(TMP_SUFFIX)) {
      await unlink(path); // a write interrupted before its rename; the old file is intact
      continue;
    }
    if (!name.endsWith(FILE_SUFFIX)) continue;
    const ns = name.slice(0, -FILE_SUFFIX.length);
    try {
      assertNamespace(ns);
    } catch {
      throw new StoreError(`unexpected file in state directory: ${path}`);
    }
    const entries = parseStateFile(path, await readFile(path, 'utf8'), now);
    namespaces.set(ns, new NamespaceFile(path, root, entries));
  }
  return namespaces;
}

function parseStateFile(path: string, text: string, now: number): Map<string, Entry> {
  const corrupt = (why: string, cause?: unknown): StoreError =>
    new StoreError(`corrupt state file ${path}: ${why}; refusing to start (restore or remove the file)`, { cause });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw corrupt('not valid JSON', err);
  }
  if (!isObject(doc) || doc.version !== 1 || !isObject(doc.entries)) {
    throw corrupt('expected {"version":1,"entries":{…}}');
  }
  const entries = new Map<string, Entry>();
  for (const [key, raw] of Object.entries(doc.entries)) {
    if (!isObject(raw) || !('value' in raw) || raw.value === undefined) throw corrupt(`entry ${JSON.stringify(key)} has no value`);
    const exp = raw.expiresAt;
    if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) {
      throw corrupt(`entry ${JSON.stringify(key)} has a bad expiresAt`);
    }
    if (exp !== undefined && exp <= now) continue;
    entries.set(key, { json: JSON.stringify(raw.value), expiresAt: exp });
  }
  return entries;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
