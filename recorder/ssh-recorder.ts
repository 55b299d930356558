import { AsciicastWriter, type AsciicastHeader } from './asciicast-writer.js';
import { RawWriter } from './raw-writer.js';
import type { RawStream } from './raw-frame.js';
import type { RecordingFile } from './recording-file.js';
import type { WriterClosed } from './recording.types.js';

/** What a pty channel's tap writes (channel-tap.ts): AsciicastWriter has exactly this shape. */
export interface TerminalSink {
  outputUtf8(chunk: Buffer, at?: number): void;
  output(data: Buffer | string, at?: number): void;
  input(data: Buffer | string, at?: number): void;
  /** Present when the sink keeps output bytes as they are (a raw recording): the tap hands them over undecoded. */
  outputBytes?(chunk: Buffer): void;
}

/** One channel of a raw recording: bytes per direction, exactly as carried. */
export interface RawChannel {
  readonly channel: number;
  data(stream: RawStream, chunk: Buffer, at?: number): void;
  transfer(record: Record<string, unknown>): void;
}

export interface ChannelStart {
  kind: string;
  label?: string;
  pty?: boolean;
  /** `judged`: the stdin gate reads this channel's stdin as command lines (each has its verdict marker). */
  stdin?: 'judged';
}

type Pending = { at: number; kind: 'marker'; label: string } | { at: number; kind: 'resize'; cols: number; rows: number };

/**
 * An SSH connection's recording. Its format is chosen by the first session channel: a pty
 * (interactive terminal) keeps asciicast v2 (`ID.cast`, what asciinema reads); an exec,
 * subsystem or no-pty shell makes the recording raw (`ID.raw`, raw-frame.ts), which keeps the
 * bytes carried losslessly. The data file is opened at login as `ID.cast` (so a recording that
 * cannot be opened still refuses the session) and renamed when raw is chosen; the catalog entry
 * follows (`onRaw`). Markers before the choice wait in memory with their times.
 *
 * Later channels of the other kind (multiplexed connections): in a raw recording a pty channel
 * is recorded raw too (keystrokes still masked by the tap); in an asciicast recording the
 * channels without a pty go losslessly into one side recording of the connection: its own raw
 * recording (catalog entry with `parent` = this one, sealed at close like any other), named by
 * a marker in the cast. Without a side opener (`openSide`) `rawChannel` answers undefined and
 * such a channel is recorded as terminal text.
 */
export class SshRecorder {
  private cast: AsciicastWriter | undefined;
  private raw: RawWriter | undefined;
  private pending: Pending[] = [];
  private readonly t0 = Date.now();
  private formatSaved: Promise<void> = Promise.resolve();
  private errorHandler: ((err: Error) => void) | undefined;
  private closedHandler: ((closed: WriterClosed) => Promise<void>) | undefined;
  private failed: Error | undefined;
  private side: { id: string; rec?: SshRecorder; opened: Promise<SshRecorder | undefined>; queue: (() => void)[] } | undefined;

  constructor(
    readonly id: string,
    private readonly file: RecordingFile,
    private readonly header: AsciicastHeader,
    /** Renames the data file to `ID.raw` (synchronously) and returns the catalog update. */
    private readonly onRaw: () => { saved: Promise<void> },
    /** Opens the side recording (raw, `parent` = this one) for later no-pty channels of an asciicast connection. */
    private readonly openSide?: () => { id: string; opened: Promise<SshRecorder> },
  ) {}

  get format(): 'undecided' | 'asciicast' | 'raw' {
    return this.cast ? 'asciicast' : this.raw ? 'raw' : 'undecided';
  }

  get isStarted(): boolean {
    return this.format !== 'undecided';
  }

  get bytes(): number {
    return this.file.bytes;
  }

  get error(): Error | undefined {
    return this.failed ?? this.file.error;
  }

  get sha256(): string | undefined {
    return this.cast?.sha256 ?? this.raw?.sha256;
  }

  set onError(fn: ((err: Error) => void) | undefined) {
    this.errorHandler = fn;
    this.file.onError = fn;
  }

  set onClosed(fn: ((closed: WriterClosed) => Promise<void>) | undefined) {
    this.closedHandler = fn;
    if (this.cast) this.cast.onClosed = fn;
    if (this.raw) this.raw.onClosed = fn;
  }

  /** A pty was asked for: the recording is asciicast with this size (later calls: a resize). */
  start(size?: { width: number; height: number; term?: string }): void {
    if (this.raw) {
      if (size) this.raw.resize(size.width, size.height);
      return;
    }
    if (!this.cast) this.chooseCast(size);
  }

  resize(cols: number, rows: number): void {
    if (this.cast) this.cast.resize(cols, rows);
    else if (this.raw) this.raw.resize(cols, rows);
    else this.pending.push({ at: Date.now(), kind: 'resize', cols, rows });
  }

  marker(label: string, at?: number): void {
    if (this.cast) this.cast.marker(label, at);
    else if (this.raw) this.raw.marker(label, at);
    else this.pending.push({ at: at ?? Date.now(), kind: 'marker', label });
  }

  /** The sink for a pty channel's tap. */
  terminal(info: ChannelStart): TerminalSink {
    if (!this.raw) return this.cast ?? this.chooseCast();
    const ch = this.raw.channel({ ...info, pty: true });
    const raw = this.raw;
    const enc = (d: Buffer | string) => (typeof d === 'string' ? Buffer.from(d, 'utf8') : d);
    return {
      outputUtf8: (chunk) => raw.data(ch, 'stdout', chunk),
      output: (d, at) => raw.data(ch, 'stdout', enc(d), at),
      input: (d, at) => raw.data(ch, 'stdin', enc(d), at),
      outputBytes: (chunk) => raw.data(ch, 'stdout', chunk),
    };
  }

  /** A lossless channel for a channel without a pty; undefined in an asciicast recording. */
  rawChannel(info: ChannelStart): RawChannel | undefined {
    if (this.cast) return this.sideChannel(info);
    const raw = this.raw ?? this.chooseRaw();
    if (!raw) return undefined;
    const channel = raw.channel(info);
    return {
      channel,
      data: (stream, chunk, at) => raw.data(channel, stream, chunk, at),
      transfer: (record) => raw.transfer({ channel, ...record }),
    };
  }

  /** The id of the side recording, once a no-pty channel of an asciicast connection opened it. */
  get sideId(): string | undefined {
    return this.side?.id;
  }

  /**
   * A channel in the side recording. Its first use opens the side (asynchronously): until then
   * the channel's bytes wait in order (bounded by the SSH window), then go through as they come.
   */
  private sideChannel(info: ChannelStart): RawChannel | undefined {
    if (!this.openSide || !this.cast) return undefined;
    if (!this.side) {
      const { id, opened } = this.openSide();
      const side: NonNullable<SshRecorder['side']> = { id, opened: Promise.resolve(undefined), queue: [] };
      side.opened = opened.then((rec) => {
        side.rec = rec;
        for (const f of side.queue.splice(0)) f();
        return rec;
      }, (err: Error) => {
        side.queue.length = 0;
        this.fail(err);
        return undefined;
      });
      this.side = side;
    }
    const side = this.side;
    this.cast.marker(`${info.label ?? info.kind} (no pty): recorded losslessly in recording ${side.id}`);
    let ch: RawChannel | undefined;
    const run = (f: (c: RawChannel) => void): void => {
      if (!side.rec) return void side.queue.push(() => run(f));
      ch ??= side.rec.rawChannel(info);
      if (ch) f(ch);
    };
    return {
      get channel() {
        return ch?.channel ?? -1;
      },
      data: (stream, chunk) => run((c) => c.data(stream, chunk)),
      transfer: (record) => run((c) => c.transfer(record)),
    };
  }

  get backlogged(): boolean {
    return ((this.cast ?? this.raw)?.backlogged ?? false) || !!this.side?.rec?.backlogged;
  }

  drained(): Promise<void> {
    const main = (this.cast ?? this.raw)?.drained() ?? Promise.resolve();
    return this.side?.rec ? Promise.all([main, this.side.rec.drained()]).then(() => undefined) : main;
  }

  async close(reason: string): Promise<void> {
    if (this.side) {
      const rec = await this.side.opened;
      await rec?.close(reason).catch(() => undefined);
    }
    const w = this.cast ?? this.raw ?? this.chooseCast();
    await this.formatSaved;
    if (this.failed) {
      // The raw file could not be set up: finish the entry as interrupted, keep what was written.
      const failed = this.failed;
      w.onClosed = (closed) => this.closedHandler?.({ ...closed, error: failed }) ?? Promise.resolve();
      await w.close(reason).catch(() => undefined);
      throw failed;
    }
    return w.close(reason);
  }

  private chooseCast(size?: { width: number; height: number; term?: string }): AsciicastWriter {
    const w = AsciicastWriter.over(this.id, this.file, this.header, this.t0);
    w.onClosed = this.closedHandler;
    this.cast = w;
    w.start(size);
    for (const p of this.drainPending()) {
      if (p.kind === 'marker') w.marker(p.label, p.at);
      else w.resize(p.cols, p.rows, p.at);
    }
    return w;
  }

  private chooseRaw(): RawWriter | undefined {
    try {
      this.formatSaved = this.onRaw().saved.catch((err: Error) => this.fail(err));
    } catch (err) {
      this.fail(err as Error);
      return undefined;
    }
    const w = RawWriter.over(this.id, this.file, { title: this.header.title, width: this.header.width, height: this.header.height }, this.t0);
    w.onClosed = this.closedHandler;
    this.raw = w;
    for (const p of this.drainPending()) {
      if (p.kind === 'marker') w.marker(p.label, p.at);
      else w.resize(p.cols, p.rows, p.at);
    }
    return w;
  }

  private drainPending(): Pending[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }

  /** The raw file could not be set up: fail closed (the lifecycle ends the session). */
  private fail(err: Error): void {
    this.failed ??= new Error(`raw recording could not be set up: ${err.message}`, { cause: err });
    queueMicrotask(() => this.errorHandler?.(this.failed!));
  }
}
