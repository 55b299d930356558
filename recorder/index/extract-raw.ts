import { FrameType, STREAMS, type RawFrame } from '../raw-frame.js';
import { TextClassifier, transferLabel } from '../raw-reader.js';
import type { ExtractSummary, IndexOp } from './index.types.js';
import { AsciicastExtractor } from './extract-asciicast.js';
import { plainAsciiKept } from './ascii-text.js';

/**
 * Reads a raw SSH recording (recorder/raw-frame.ts: channels without a pty, exact bytes per
 * stream) as it grows and indexes it like a terminal recording, rendered the way the readers
 * render it (raw-reader.ts rawCastEvents): stdout and stderr text as output, markers and file
 * transfers as markers (exec commands, exit status and denials settle command events). Stdin:
 * a channel whose stdin the stdin gate judged line by line (its CHANNEL frame says
 * `stdin: "judged"`) has each line as a command event from its verdict marker (`allowed (rule):
 * LINE`, `denied: LINE: why`), so its stdin text is not indexed again; the text stdin of any
 * other shell or exec channel (a piped script, a here-document) is indexed as `input`. File
 * transfers (scp, sftp) and binary stdin are not. A binary stream is indexed as one note, and
 * its later payloads are not read at all (wantsData: the reader skips them by frame header). A
 * malformed file stops the reading; what came before stays indexed.
 */
export class RawExtractor {
  private readonly ex: AsciicastExtractor;
  private readonly text = new Map<string, TextClassifier>();
  /** Channels whose stdin is indexed as `input` text (not judged by line, not a file transfer). */
  private readonly stdinText = new Set<number>();
  private stopped = false;

  constructor(startMs: number) {
    this.ex = new AsciicastExtractor(startMs);
  }

  /** True once a reader found the file malformed: what came before stays indexed, nothing after is read. */
  get isBroken(): boolean {
    return this.stopped;
  }

  broken(): void {
    this.stopped = true;
  }

  /**
   * Whether a Data frame's payload could add anything: not once its stream turned out binary
   * (one marker says so, the recording keeps the bytes), not past the output cap, not the stdin
   * of a channel whose stdin is not indexed. A reader skips the others unread.
   */
  wantsData(stream: number, channel: number): boolean {
    if (this.stopped || !this.ex.wantsOutput) return false;
    if (stream === 0 && !this.stdinText.has(channel)) return false;
    return this.text.get(`${channel}:${stream}`)?.binary !== true;
  }

  get summary(): ExtractSummary {
    return this.ex.summary;
  }

  /** A whole frame of the file, in order (RawScanner reads them). */
  frame(f: RawFrame, out: IndexOp[]): void {
    if (this.stopped) return;
    const t = f.t / 1000;
    if (f.type === FrameType.Marker) this.ex.event(t, 'm', f.payload.toString('utf8'), out);
    else if (f.type === FrameType.Transfer) this.ex.event(t, 'm', transferLabel(json(f.payload)), out);
    else if (f.type === FrameType.Channel) {
      const info = json(f.payload);
      if (info.stdin !== 'judged' && info.kind !== 'transfer' && info.kind !== 'sftp' && !info.pty) this.stdinText.add(f.channel);
      else this.stdinText.delete(f.channel);
    } else if (f.type === FrameType.Data && f.stream === 0) {
      if (!this.stdinText.has(f.channel) || !this.ex.wantsOutput) return;
      const key = `${f.channel}:0`;
      let c = this.text.get(key);
      if (!c) this.text.set(key, (c = new TextClassifier()));
      if (this.plainAscii(c, 'input', t, f.payload, out)) return;
      const s = c.feed(f.payload);
      // Binary stdin (an upload through a pipe) is data, not text to search: left to the recording.
      if (s) this.ex.input(t, s, out);
    } else if (f.type === FrameType.Data && this.ex.wantsOutput) {
      // Past the output cap nothing more is indexed: do not decode a gigabyte only to drop it.
      const key = `${f.channel}:${f.stream}`;
      let c = this.text.get(key);
      if (!c) this.text.set(key, (c = new TextClassifier()));
      if (this.plainAscii(c, 'output', t, f.payload, out)) return;
      const was = c.binary;
      const s = c.feed(f.payload);
      if (s) this.ex.event(t, 'o', s, out);
      else if (s === undefined && !was) this.ex.event(t, 'm', `binary ${STREAMS[f.stream] ?? 'stdout'} on channel ${f.channel}`, out);
    }
  }

  /**
   * A payload of plain ASCII on a stream whose decoder is settled, indexed from its bytes
   * (ascii-text.ts: the same text the decoder and plainText would give, without them). False
   * when it is not such a payload: the caller decodes it.
   */
  private plainAscii(c: TextClassifier, kind: 'output' | 'input', t: number, payload: Buffer, out: IndexOp[]): boolean {
    if (!c.settledText) return false;
    const kept = plainAsciiKept(payload);
    if (kept === undefined) return false;
    this.ex.plainKept(kind, t, payload.length, kept, out);
    return true;
  }

  pending(out: IndexOp[]): void {
    this.ex.pending(out);
  }

  end(out: IndexOp[]): void {
    this.ex.end(out);
  }
}

function json(b: Buffer): Record<string, unknown> {
  try {
    const o = JSON.parse(b.toString('utf8')) as unknown;
    return o && typeof o === 'object' ? (o as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
