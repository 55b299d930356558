export type RecordingStatus = 'live' | 'ended' | 'interrupted';

/** Catalog entry of one recorded session (data_dir/recordings/ID.meta.json). */
export interface RecordingMeta {
  id: string;
  protocol: 'ssh' | 'postgres';
  user: string;
  subject: string;
  login: string;
  target: string;
  database?: string;
  clientAddress?: string;
  grantId?: string;
  /**
   * ssh: asciicast (v2, `ID.cast`) when the connection's first channel has a pty, raw
   * (`ID.raw`, recorder/raw-frame.ts: the bytes carried, lossless) otherwise; postgres: jsonl.
   */
  format: 'asciicast' | 'raw' | 'jsonl';
  start: string;
  end?: string;
  endReason?: string;
  bytes: number;
  status: RecordingStatus;
  /** SHA-256 (hex) of the data file, set when the recording is sealed at close. */
  sha256?: string;
  /** ssh: the side recording of a connection's later channels without a pty names the connection's (asciicast) recording. */
  parent?: string;
}

/** The catalog fields a broker gives when a recording starts; the catalog adds the rest. */
export type NewRecording = Omit<RecordingMeta, 'id' | 'status' | 'bytes' | 'start' | 'format' | 'protocol' | 'end' | 'endReason' | 'sha256'> & { id?: string };

/** What a writer reports once its data file is closed: the catalog entry is finished with it. */
export interface WriterClosed {
  reason: string;
  bytes: number;
  /** SHA-256 (hex) of everything written; absent when the file could not be sealed. */
  sha256?: string;
  /** Set when a write or the final sync failed: the recording is incomplete. */
  error?: Error;
}

/** Sink for a terminal session (asciicast v2). Writes stream to disk; flushed at least once a second. */
export interface TerminalRecorder {
  readonly id: string;
  output(data: Buffer | string): void;
  input(data: Buffer | string): void;
  resize(cols: number, rows: number): void;
  marker(label: string): void;
  close(reason: string): Promise<void>;
}

/** Sink for a Postgres session (JSON lines). */
export interface QueryRecorder {
  readonly id: string;
  event(event: Record<string, unknown>): void;
  close(reason: string): Promise<void>;
}
