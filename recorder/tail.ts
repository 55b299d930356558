import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RecordingMeta } from './recording.types.js';
import { RawFrameParser, type RawFrame } from './raw-frame.js';
import { RawCastRenderer, rawCastHeader } from './raw-reader.js';

const POLL_MS = 200;
const CHUNK = 256 * 1024;
/** Bytes sent back from the end when joining a long session, so a viewer does not get hours of output. */
const BACKLOG = 256 * 1024;
/** The writer creates the file right after the session registers: wait this many polls for it. */
const OPEN_ATTEMPTS = 25;

export interface TailOptions {
  format: RecordingMeta['format'];
  /** True once the session has ended: the tail reads what is left, then stops. */
  ended: () => boolean;
  /** Aborted when the reader goes away (a closed WebSocket): the tail stops and closes the file. */
  signal?: AbortSignal;
  pollMs?: number;
}

/**
 * Follows a recording file while its session writes it (the writers flush every 250 ms) and
 * yields whole lines, several joined by `\n` per block: the asciicast header and events for
 * SSH, statement lines for Postgres. Joining a file longer than BACKLOG starts from a line
 * boundary near its end (after the header, for asciicast). Returns once `ended()` and the last
 * bytes are read. The consumer applies backpressure by awaiting before it asks for the next block.
 */
export async function* tailRecording(path: string, opts: TailOptions): AsyncGenerator<string> {
  if (opts.format === 'raw') return yield* tailRaw(path, opts);
  const pollMs = opts.pollMs ?? POLL_MS;
  const fh = await openWhenThere(path, pollMs, opts.signal);
  try {
    let offset = 0;
    const size = (await fh.stat()).size;
    if (size > BACKLOG) {
      if (opts.format === 'asciicast') {
        const header = await lineAt(fh, 0);
        if (header?.text) yield header.text;
      }
      const from = size - BACKLOG;
      const next = await lineAt(fh, from);
      offset = next ? from + next.bytes : size;
    }
    const decoder = new TextDecoder('utf-8');
    const buf = Buffer.alloc(CHUNK);
    let carry = '';
    while (!opts.signal?.aborted) {
      const wasEnded = opts.ended();
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const text = carry + decoder.decode(buf.subarray(0, bytesRead), { stream: true });
        const cut = text.lastIndexOf('\n');
        if (cut < 0) {
          carry = text;
          continue;
        }
        carry = text.slice(cut + 1);
        const lines = text.slice(0, cut);
        if (lines) yield lines;
        if (opts.signal?.aborted) return;
      }
      if (wasEnded) return;
      await sleep(pollMs, undefined, { signal: opts.signal }).catch(() => undefined);
    }
  } finally {
    await fh.close();
  }
}

async function openWhenThere(path: string, pollMs: number, signal?: AbortSignal): Promise<FileHandle> {
  for (let i = 0; i < OPEN_ATTEMPTS && !signal?.aborted; i++) {
    try {
      return await open(path, 'r');
    } catch {
      await sleep(pollMs, undefined, { signal }).catch(() => undefined);
    }
  }
  throw new Error('recording file not found');
}

/**
 * From byte `at`: the text of the line that starts there and the bytes up to and including the
 * next newline (for `at` inside a line: the rest of it). Looks at most 64 KiB ahead.
 */
async function lineAt(fh: FileHandle, at: number): Promise<{ text: string; bytes: number } | undefined> {
  const buf = Buffer.alloc(64 * 1024);
  const { bytesRead } = await fh.read(buf, 0, buf.length, at);
  const nl = buf.subarray(0, bytesRead).indexOf(10);
  if (nl < 0) return undefined;
  return { text: buf.toString('utf8', 0, nl), bytes: nl + 1 };
}

/**
 * A raw recording followed live, rendered as asciicast lines (raw-reader.ts RawCastRenderer):
 * the header first, then events as frames complete. Joining a long session reads the frames
 * from the start (a raw file has no line boundaries to seek to) and sends only the last
 * BACKLOG bytes of what they render.
 */
async function* tailRaw(path: string, opts: TailOptions): AsyncGenerator<string> {
  const pollMs = opts.pollMs ?? POLL_MS;
  const fh = await openWhenThere(path, pollMs, opts.signal);
  try {
    const parser = new RawFrameParser();
    const render = new RawCastRenderer();
    const buf = Buffer.alloc(CHUNK);
    let offset = 0;
    let started = false;
    const joinedAt = (await fh.stat()).size;
    let backlog: string[] = [];
    let backlogBytes = 0;
    while (!opts.signal?.aborted) {
      const wasEnded = opts.ended();
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const frames: RawFrame[] = [];
        parser.push(Buffer.from(buf.subarray(0, bytesRead)), frames);
        const lines: string[] = [];
        if (!started && parser.header) {
          started = true;
          yield rawCastHeader(parser.header);
        }
        for (const f of frames) {
          const e = render.frame(f);
          if (e) lines.push(JSON.stringify(e));
        }
        if (offset < joinedAt) {
          // Catching up: keep only the tail of what the past renders to.
          for (const l of lines) {
            backlog.push(l);
            backlogBytes += l.length + 1;
          }
          while (backlogBytes > BACKLOG && backlog.length > 1) backlogBytes -= backlog.shift()!.length + 1;
          continue;
        }
        if (backlog.length) {
          lines.unshift(...backlog);
          backlog = [];
          backlogBytes = 0;
        }
        if (lines.length) yield lines.join('\n');
        if (opts.signal?.aborted) return;
      }
      if (backlog.length) {
        yield backlog.join('\n');
        backlog = [];
        backlogBytes = 0;
      }
      if (wasEnded) return;
      await sleep(pollMs, undefined, { signal: opts.signal }).catch(() => undefined);
    }
  } finally {
    await fh.close();
  }
}
