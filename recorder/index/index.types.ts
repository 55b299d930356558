import type { RecordingMeta } from '../recording.types.js';

/**
 * The catalog and full-text index of the recordings (issue 15). Everything in it is derived
 * from the files in `data_dir/recordings/` (`ID.meta.json`, `ID.cast`, `ID.jsonl`) by the
 * extractors in this folder, so an index rebuilt from the files equals the one built while the
 * sessions ran, and losing the index loses nothing.
 */

/**
 * Kinds of indexed text. `command` is a shell line or exec request, `sql` a statement, `input`
 * the stdin text of a channel without a pty that no gate read as command lines (a piped script).
 */
export type DocKind = 'output' | 'command' | 'sql' | 'marker' | 'input';
export const DOC_KINDS: readonly DocKind[] = ['output', 'command', 'sql', 'marker', 'input'];

/**
 * A verdict as recorded: what the policy said about a command or statement. With it goes the
 * deciding rule's name, `default_action` when no rule matched; no rule at all means the line was
 * not judged (a session without a policy, a recording made before verdicts of allowed lines were
 * recorded).
 */
export type CommandVerdict = 'allow' | 'alert' | 'review' | 'deny';

/**
 * One step of indexing one recording, produced by an extractor from the recording's lines.
 * Both kinds are upserts keyed by (recording, key): an extractor re-emits a key when the text
 * grows (an output chunk still open) or when a later marker settles a command's verdict.
 */
export type IndexOp =
  | { op: 'doc'; key: number; kind: 'output' | 'marker' | 'input'; t: number; ts: number; text: string }
  | { op: 'command'; key: number; t: number; ts: number; via: 'shell' | 'exec' | 'sql'; text: string; name: string; verdict: CommandVerdict; rule?: string; outcome?: string };

export type CommandOp = Extract<IndexOp, { op: 'command' }>;

/** Per-recording summary an extractor keeps while it reads. */
export interface ExtractSummary {
  denials: number;
  commands: number;
}

/** A session row: the catalog entry plus what the extractor counted. */
export interface IndexedSession extends RecordingMeta {
  denials: number;
  commands: number;
  /** The first exec request of an SSH session (`ssh host CMD`), in the sessions list only. */
  exec?: string;
}

export interface SearchFilters {
  /** Exact user (case-insensitive), or a glob with `*` and `?`. */
  user?: string;
  /** Exact target (case-insensitive), or a glob: `prod-*`. */
  target?: string;
  protocol?: RecordingMeta['protocol'];
  /** Inclusive lower bound, ms since the epoch. */
  sinceMs?: number;
  /** Exclusive upper bound, ms since the epoch. */
  untilMs?: number;
  kinds?: DocKind[];
  verdict?: CommandVerdict;
  recording?: string;
}

export interface SearchQuery extends SearchFilters {
  /** An FTS5 MATCH expression built by `parseQuery` (never raw user text); absent: list commands by filters. */
  match?: string;
  cursor?: string;
  limit: number;
}

export interface SearchHit {
  recording: string;
  protocol: RecordingMeta['protocol'];
  user: string;
  target: string;
  login: string;
  /** Start of the session (ISO). */
  start: string;
  /** Time of the hit (ISO). */
  time: string;
  /** Seconds into the recording: the moment to replay. */
  t: number;
  kind: DocKind;
  snippet: string;
  /** For command and sql hits. */
  command?: { via: 'shell' | 'exec' | 'sql'; text: string; name: string; verdict: CommandVerdict; rule?: string; outcome?: string };
}

export interface SearchPage {
  hits: SearchHit[];
  /** Pass back as `cursor` for the next (older) page; absent on the last page. */
  next?: string;
}

export interface SessionQuery {
  /** Substring of the user or target (case-insensitive), as the sessions page filters. */
  user?: string;
  target?: string;
  protocol?: RecordingMeta['protocol'];
  status?: 'live' | 'ended';
  fromMs?: number;
  toMs?: number;
  onlyDenials?: boolean;
  cursor?: string;
  limit: number;
}

export interface SessionPage {
  sessions: IndexedSession[];
  next?: string;
}

/** What the index knows about one recording's files, to tell when it is stale. */
export interface IndexedFile {
  id: string;
  metaMtimeMs: number;
  metaSize: number;
  dataSize: number;
}

/**
 * The one interface both implementations (embedded SQLite, PostgreSQL for clusters) provide.
 * Writes come from one indexer per node; reads from the API.
 */
export interface IndexStore {
  upsertSession(meta: RecordingMeta, summary: ExtractSummary): void;
  apply(recording: string, ops: IndexOp[]): void;
  /** Removes a recording and everything indexed from it. */
  forget(recording: string): void;
  markIndexed(file: IndexedFile): void;
  indexedFiles(): Map<string, IndexedFile>;
  /** Runs `fn` as one transaction (a batch of writes). */
  batch<T>(fn: () => T): T;
  search(q: SearchQuery): SearchPage;
  sessions(q: SessionQuery): SessionPage;
  session(id: string): IndexedSession | undefined;
  close(): void;
}

export interface IndexStatus {
  /** `building`: catching up with the recordings folder; results may be missing older sessions. */
  state: 'starting' | 'building' | 'ready' | 'failed';
  done: number;
  total: number;
  error?: string;
}

/** What the API and the UI read: the index of this node's recordings. */
export interface RecordingSearch {
  search(q: SearchQuery): Promise<SearchPage>;
  sessions(q: SessionQuery): Promise<SessionPage>;
  status(): IndexStatus;
}

export class IndexUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexUnavailable';
  }
}
