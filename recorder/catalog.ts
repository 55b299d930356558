import { randomBytes } from 'node:crypto';
import { existsSync, renameSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AsciicastWriter, type AsciicastHeader } from './asciicast-writer.js';
import { EntryFiles } from './entry-files.js';
import { QueryLogWriter } from './query-log-writer.js';
import { RecordingFile } from './recording-file.js';
import { SshRecorder } from './ssh-recorder.js';
import { TransferStore } from './transfer-store.js';
import { fileSha256 } from './verify.js';
import type { NewRecording, RecordingMeta, WriterClosed } from './recording.types.js';

const ID = /^[0-9a-z]{8,16}-[0-9a-f]{8}$/;
/** Data file name extension per format. */
export const EXT: Record<RecordingMeta['format'], string> = { asciicast: 'cast', raw: 'raw', jsonl: 'jsonl' };

export class RecordingNotFound extends Error {
  constructor(id: string) {
    super(`no recording ${JSON.stringify(id).slice(0, 80)}`);
    this.name = 'RecordingNotFound';
  }
}

/**
 * The recordings folder: `ID.meta.json` (catalog entry, rewritten atomically) beside the data
 * file `ID.cast` (asciicast v2) or `ID.jsonl` (Postgres statements). Ids are checked against a
 * strict pattern before any path is built, so no id can reach outside the folder.
 */
export interface CatalogOptions {
  /**
   * Called once a recording's seal (its `sha256`) is written into its catalog entry, with the
   * entry's exact text; the composition root appends the seal to the audit log (and so to the
   * signed transparency log). The update waits for it: a seal that cannot be logged is an error.
   */
  onSealed?: (meta: RecordingMeta, catalogText: string) => Promise<void>;
}

export class RecordingCatalog {
  private readonly listeners = new Set<(meta: RecordingMeta) => void>();
  /**
   * Entries of live recordings this catalog wrote, as written: their updates (the SSH format
   * change, the seal) need not read the file back. An entry leaves when it is no longer live.
   */
  private readonly live = new Map<string, RecordingMeta>();

  private constructor(readonly dir: string, private readonly opts: CatalogOptions, private readonly files: EntryFiles) {}

  /**
   * Calls `fn` after every catalog write (a recording created, updated, ended): the hook the
   * index follows live sessions by (recorder/index/live-index.ts). Returns the unsubscribe.
   */
  onWrite(fn: (meta: RecordingMeta) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Opens the folder; recordings still marked live from an earlier run become "interrupted". */
  static async open(dir: string, opts: CatalogOptions = {}): Promise<RecordingCatalog> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const cat = new RecordingCatalog(dir, opts, await EntryFiles.open(dir));
    for (const meta of await cat.list()) {
      if (meta.status === 'live') {
        // Killed between renaming a new SSH recording to ID.raw and saving its format: the file says.
        const raw = meta.format === 'asciicast' && existsSync(cat.dataPath(meta.id, 'raw')) && !existsSync(cat.dataPath(meta.id, 'asciicast'));
        const format = raw ? ('raw' as const) : meta.format;
        // With a seal hook (the audit log, signed evidence), what survived the crash is sealed
        // as found, so at least those bytes cannot change unnoticed afterwards.
        const found = opts.onSealed ? await fileSha256(cat.dataPath(meta.id, format)).catch(() => undefined) : undefined;
        await cat.update(meta.id, {
          status: 'interrupted', endReason: found ? 'proxy stopped while the session ran; sealed as found at restart' : 'proxy stopped while the session ran',
          ...(raw ? { format } : {}), ...(found ? { sha256: found, bytes: (await stat(cat.dataPath(meta.id, format))).size } : {}),
        });
      }
    }
    return cat;
  }

  /** Reads an existing folder without touching it (verification beside a running proxy). */
  static reader(dir: string): RecordingCatalog {
    return new RecordingCatalog(dir, {}, EntryFiles.reader(dir));
  }

  private store: TransferStore | undefined;

  /** Contents of transferred files, once per SHA-256 (`recordings/transfers/`). */
  transfers(): TransferStore {
    this.store ??= new TransferStore(join(this.dir, 'transfers'));
    return this.store;
  }

  static isId(id: string): boolean {
    return ID.test(id);
  }

  newId(): string {
    return `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`;
  }

  dataPath(id: string, format: RecordingMeta['format']): string {
    if (!ID.test(id)) throw new RecordingNotFound(id);
    return join(this.dir, `${id}.${EXT[format]}`);
  }

  private metaPath(id: string): string {
    if (!ID.test(id)) throw new RecordingNotFound(id);
    return join(this.dir, `${id}.meta.json`);
  }

  /**
   * Opens a recording: the catalog entry (live) and its writer together. The writer finishes the
   * entry when it is closed: `ended` with the data file's SHA-256 and size, or `interrupted`
   * when the file could not be written completely. If the data file cannot be created, the
   * entry is marked interrupted at once and the error is thrown (the broker refuses the session).
   */
  start(format: 'ssh', meta: NewRecording, opts: { header: AsciicastHeader; flushMs?: number }): Promise<SshRecorder>;
  start(format: 'asciicast', meta: NewRecording, opts: { header: AsciicastHeader; flushMs?: number }): Promise<AsciicastWriter>;
  start(format: 'jsonl', meta: NewRecording, opts: { start: Record<string, unknown> }): Promise<QueryLogWriter>;
  async start(
    format: 'ssh' | 'asciicast' | 'jsonl',
    meta: NewRecording,
    opts: { header: AsciicastHeader; flushMs?: number } | { start: Record<string, unknown> },
  ): Promise<AsciicastWriter | QueryLogWriter | SshRecorder> {
    const protocol = format === 'jsonl' ? 'postgres' : 'ssh';
    // An SSH recording starts as asciicast: it becomes raw when its first channel has no pty.
    const entry = this.entry({ ...meta, protocol, format: format === 'jsonl' ? 'jsonl' : 'asciicast' });
    const path = this.dataPath(entry.id, entry.format);
    // The entry and the data file are created side by side: the session waits for the slower
    // of the two file creations, not for both in turn. The session runs only if both exist.
    const [written, opened] = await Promise.allSettled([this.write(entry, false), this.openWriter(format, entry, meta, path, opts)]);
    if (written.status === 'rejected') {
      // No entry names this data file: it is removed, so nothing unlisted is left behind.
      if (opened.status === 'fulfilled') await opened.value.close('the catalog entry could not be written').catch(() => undefined);
      if (opened.status === 'fulfilled') await rm(path, { force: true }).catch(() => undefined);
      throw written.reason;
    }
    if (opened.status === 'rejected') {
      const err = opened.reason as Error;
      await this.update(entry.id, { status: 'interrupted', end: new Date().toISOString(), endReason: `recording could not be opened: ${err.message}` })
        .catch(() => undefined);
      throw err;
    }
    const writer = opened.value;
    writer.onClosed = (closed) => this.finish(entry.id, closed);
    return writer;
  }

  /** Creates the data file at `path` and its writer in the recording's format. */
  private async openWriter(
    format: 'ssh' | 'asciicast' | 'jsonl',
    entry: RecordingMeta,
    meta: NewRecording,
    path: string,
    opts: { header: AsciicastHeader; flushMs?: number } | { start: Record<string, unknown> },
  ): Promise<AsciicastWriter | QueryLogWriter | SshRecorder> {
    if (format === 'ssh' && 'header' in opts) {
      const file = await RecordingFile.create(path, Math.max(1, (opts.flushMs ?? 250) - 10));
      const header = opts.header;
      return new SshRecorder(entry.id, file, header, () => {
        renameSync(path, this.dataPath(entry.id, 'raw'));
        return { saved: this.update(entry.id, { format: 'raw' }).then(() => undefined) };
      }, meta.parent ? undefined : () => {
        // Later no-pty channels of an asciicast connection: their own raw recording, linked to this one.
        const id = this.newId();
        const opened = this.start('ssh', { ...meta, id, parent: entry.id }, { ...opts, header: { ...header, title: `${header.title} (channels without a pty)` } });
        return { id, opened };
      });
    }
    return 'header' in opts
      ? AsciicastWriter.create(entry.id, path, opts.header, opts.flushMs)
      : QueryLogWriter.open(entry.id, path, opts.start);
  }

  /** Finishes the entry of a closed writer (the seal of a complete file, or interrupted). */
  private async finish(id: string, closed: WriterClosed): Promise<void> {
    await this.update(id, {
      status: closed.error ? 'interrupted' : 'ended', end: new Date().toISOString(), endReason: closed.reason, bytes: closed.bytes,
      ...(closed.sha256 ? { sha256: closed.sha256 } : {}),
    });
  }

  /** Registers a new live recording and returns its meta and the data file path to stream into (a caller then opens its own writer; see start). */
  async create(meta: Omit<RecordingMeta, 'id' | 'status' | 'bytes' | 'start'> & { id?: string }): Promise<{ meta: RecordingMeta; path: string }> {
    const full = this.entry(meta);
    await this.write(full, false);
    return { meta: full, path: this.dataPath(full.id, full.format) };
  }

  /** A new live entry (not yet written). */
  private entry(meta: Omit<RecordingMeta, 'id' | 'status' | 'bytes' | 'start'> & { id?: string }): RecordingMeta {
    return { ...meta, id: meta.id ?? this.newId(), status: 'live', bytes: 0, start: new Date().toISOString() };
  }

  async update(id: string, patch: Partial<RecordingMeta>): Promise<RecordingMeta> {
    const cur = this.live.get(id) ?? await this.get(id);
    if (!cur) throw new RecordingNotFound(id);
    const next = { ...cur, ...patch, id: cur.id };
    const text = await this.write(next, true);
    if (patch.sha256 !== undefined) await this.opts.onSealed?.(next, text);
    return next;
  }

  async get(id: string): Promise<RecordingMeta | undefined> {
    const text = await this.entryText(id);
    return text === undefined ? undefined : (JSON.parse(text) as RecordingMeta);
  }

  /** The catalog entry's exact text (evidence bundles carry it as sealed). */
  async entryText(id: string): Promise<string | undefined> {
    if (!ID.test(id)) return undefined;
    try {
      return await readFile(this.metaPath(id), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Newest first. */
  async list(): Promise<RecordingMeta[]> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith('.meta.json')).sort().reverse();
    // Read 64 at a time: with 10^5 entries one await per file kept `pam serve` from starting for a minute.
    const out: RecordingMeta[] = [];
    for (let i = 0; i < names.length; i += 64) {
      const batch = await Promise.all(names.slice(i, i + 64).map((n) => this.get(n.slice(0, -'.meta.json'.length))));
      for (const m of batch) if (m) out.push(m);
    }
    return out;
  }

  /**
   * Writes an entry atomically (recorder/entry-files.ts: a spare or new file, renamed into
   * place; the replaced one kept as a spare, so no inode is freed). Creating, linking and
   * renaming are directory operations, made in the thread pool: creating a file can take a
   * millisecond of kernel time (ext4 without a journal scans recently deleted inodes), which
   * must not stall every session's relay on the event loop. The few hundred bytes are written
   * on the event loop. `replaces`: the entry may exist already.
   */
  private async write(meta: RecordingMeta, replaces: boolean): Promise<string> {
    const path = this.metaPath(meta.id);
    const text = JSON.stringify(meta);
    await this.files.write(path, text, replaces);
    if (meta.status === 'live') this.live.set(meta.id, meta);
    else this.live.delete(meta.id);
    for (const fn of this.listeners) {
      try {
        fn(meta);
      } catch (err) {
        console.error('recording catalog: listener failed', err);
      }
    }
    return text;
  }
}
