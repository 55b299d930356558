import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCheckpoint, type SignedCheckpoint } from './checkpoint.js';

/**
 * Somewhere outside data_dir that keeps every checkpoint the proxy signs, so that cutting the
 * log's tail or deleting it whole is caught: the witness remembers a size the log no longer has.
 * One interface for the kinds to come (syslog, another node, object storage).
 */
export interface Witness {
  /** For messages: "file:///mnt/witness". */
  readonly name: string;
  /** Stores a checkpoint durably before resolving. Refuses one that goes back or forks. */
  publish(cp: SignedCheckpoint): Promise<void>;
  /** Every checkpoint it holds, oldest first, and lines it could not read. */
  read(): Promise<{ checkpoints: SignedCheckpoint[]; unreadable: number[] }>;
}

export class WitnessError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WitnessError';
  }
}

/**
 * A directory (on another disk or mount): `checkpoints.jsonl`, appended and synced per
 * checkpoint, and `latest.json`, replaced atomically, for a human or a script to look at.
 */
export class FileWitness implements Witness {
  private latest: SignedCheckpoint | undefined;

  private loaded = false;

  constructor(readonly dir: string, readonly name = `file://${dir}`) {}

  private get logPath(): string {
    return join(this.dir, 'checkpoints.jsonl');
  }

  async read(): Promise<{ checkpoints: SignedCheckpoint[]; unreadable: number[] }> {
    let text = '';
    try {
      text = await readFile(this.logPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new WitnessError(`witness ${this.name} is unreadable: ${(err as Error).message}`, { cause: err });
    }
    const checkpoints: SignedCheckpoint[] = [];
    const unreadable: number[] = [];
    text.split('\n').forEach((line, i) => {
      if (!line) return;
      try {
        checkpoints.push(parseCheckpoint(JSON.parse(line)));
      } catch {
        unreadable.push(i + 1);
      }
    });
    return { checkpoints, unreadable };
  }

  async publish(cp: SignedCheckpoint): Promise<void> {
    if (!this.loaded) {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const { checkpoints } = await this.read();
      this.latest = checkpoints.filter((c) => c.origin === cp.origin).at(-1);
      this.loaded = true;
    }
    const prev = this.latest;
    if (prev && cp.size < prev.size) throw new WitnessError(`witness ${this.name} holds a checkpoint of ${prev.size} entries; refusing one of ${cp.size} (the log went back)`);
    if (prev && cp.size === prev.size && cp.root !== prev.root) throw new WitnessError(`witness ${this.name} holds another root for ${cp.size} entries (the log forked)`);
    const line = JSON.stringify(cp) + '\n';
    const fh = await open(this.logPath, 'a', 0o600);
    try {
      await fh.write(line);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    const tmp = join(this.dir, `.latest.${randomBytes(3).toString('hex')}.tmp`);
    await writeFile(tmp, JSON.stringify(cp, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, join(this.dir, 'latest.json'));
    this.latest = cp;
  }
}

/** `evidence.witness` as configured: only file:// URLs for now. */
export function openWitness(url: string): Witness {
  if (!url.startsWith('file://')) throw new WitnessError(`witness ${url}: only file:///path is supported`);
  return new FileWitness(fileURLToPath(url), url);
}
