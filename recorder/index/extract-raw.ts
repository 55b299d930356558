import { FrameType, RawFormatError, RawFrameParser, STREAMS, type RawFrame } from '../raw-frame.js';
import { TextClassifier, transferLabel } from '../raw-reader.js';
import type { ExtractSummary, IndexOp } from './index.types.js';
import { AsciicastExtractor } from './extract-asciicast.js';

/**
 * Reads a raw SSH recording (recorder/raw-frame.ts: channels without a pty, exact bytes per
 * stream) as it grows and indexes it like a terminal recording, rendered the way the readers
 * render it (raw-reader.ts rawCastEvents): stdout and stderr text as output, markers and file
 * transfers as markers (exec commands, exit status and denials settle command events). Stdin:
 * a channel whose stdin the stdin gate judged line by line (its CHANNEL frame says
 * `stdin: "judged"`) has each line as a command event from its verdict marker (`allowed (rule):
 * LINE`, `denied: LINE: why`), so its stdin text is not indexed again; the text stdin of any
 * other shell or exec channel (a piped script, a here-document) is indexed as `input`. File
 * transfers (scp, sftp) and binary stdin are not. A binary stream is indexed as one note. A
 * malformed file stops the reading; what came before stays indexed.
 */
export class RawExtractor {
  private readonly parser = new RawFrameParser();
  private readonly ex: AsciicastExtractor;
  private readonly text = new Map<string, TextClassifier>();
  /** Channels whose stdin is indexed as `input` text (not judged by line, not a file transfer). */
  private readonly stdinText = new Set<number>();
  private broken = false;

  constructor(startMs: number) {
    this.ex = new AsciicastExtractor(startMs);
  }

  /**
   * True once the output cap is reached: from here on only markers,
   * transfers and channel frames matter, so a reader may skip Data payloads unread (skimmed()).
   */
  get skimming(): boolean {
    return !this.broken && !this.ex.wantsOutput && this.parser.header !== undefined;
  }

  /**
   * Forgets the bytes of a frame not yet whole and returns how many they were: a reader that
   * starts skimming goes back that far, to the frame's header.
   */
  dropPending(): number {
    return this.parser.dropPending();
  }

  /** A whole frame found by a reader that skims the file past Data payloads. */
  skimmed(f: RawFrame, out: IndexOp[]): void {
    this.frame(f, out);
  }

  /** A reader found a frame header no writer makes: stop, as bytes() does. */
  brokenAt(): void {
    this.broken = true;
  }

  get summary(): ExtractSummary {
    return this.ex.summary;
  }

  /** Bytes of the file, in order from its start. */
  bytes(chunk: Buffer, out: IndexOp[]): void {
    if (this.broken) return;
    const frames: RawFrame[] = [];
    try {
      this.parser.push(chunk, frames);
    } catch (err) {
      if (!(err instanceof RawFormatError)) throw err;
      this.broken = true;
    }
    for (const f of frames) this.frame(f, out);
  }

  private frame(f: RawFrame, out: IndexOp[]): void {
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
      const s = c.feed(f.payload);
      // Binary stdin (an upload through a pipe) is data, not text to search: left to the recording.
      if (s) this.ex.input(t, s, out);
    } else if (f.type === FrameType.Data && this.ex.wantsOutput) {
      // Past the output cap nothing more is indexed: do not decode a gigabyte only to drop it.
      const key = `${f.channel}:${f.stream}`;
      let c = this.text.get(key);
      if (!c) this.text.set(key, (c = new TextClassifier()));
      const was = c.binary;
      const s = c.feed(f.payload);
      if (s) this.ex.event(t, 'o', s, out);
      else if (s === undefined && !was) this.ex.event(t, 'm', `binary ${STREAMS[f.stream] ?? 'stdout'} on channel ${f.channel}`, out);
    }
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
