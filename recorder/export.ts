import { readFile } from 'node:fs/promises';
import type { RecordingMeta } from './recording.types.js';
import { asciicastToText } from './asciicast-text.js';
import { castEvents } from './cast-reader.js';
import { rawAsCast, rawStreamBytes } from './raw-reader.js';
import type { RawStream } from './raw-frame.js';

export type ExportFormat = 'asciicast' | 'text' | 'jsonl' | 'raw';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['asciicast', 'text', 'jsonl', 'raw'];

/** A Postgres session's statements as readable lines. */
export function jsonlToText(jsonl: string): string {
  const out: string[] = [];
  for (const line of jsonl.split('\n')) {
    if (!line) continue;
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(line);
    } catch {
      break;
    }
    const time = typeof ev.t === 'string' ? ev.t : '';
    if (typeof ev.sql === 'string') {
      const sql = ev.sql;
      const err = ev.error as { sqlstate?: string; message?: string } | undefined;
      const outcome = err ? `ERROR ${err.sqlstate ?? ''} ${err.message ?? ''}`.trim() : String(ev.tag ?? '');
      out.push(`${time}  ${sql.replace(/\s+/g, ' ')}  -- ${outcome}`);
    } else if (typeof ev.type === 'string') {
      out.push(`${time}  [${ev.type}]${typeof ev.reason === 'string' ? ` ${ev.reason}` : ''}`);
    }
  }
  return out.join('\n') + '\n';
}

/** A raw recording rendered as an asciicast v2 file (raw-reader.ts `rawAsCast`), whole. */
export async function rawCastText(path: string): Promise<string> {
  const parts: string[] = [];
  for await (const line of rawAsCast(path)) parts.push(line);
  return parts.join('');
}

/** A recording as plain text: terminal output without escape sequences, or one line per statement. */
export async function recordingText(meta: RecordingMeta, path: string): Promise<string> {
  if (meta.format === 'raw') return asciicastToText(await rawCastText(path));
  const raw = await readFile(path, 'utf8');
  return meta.format === 'asciicast' ? asciicastToText(raw) : jsonlToText(raw);
}

/**
 * One stream's bytes: exact for a raw recording; for an asciicast one (a pty session, where
 * the terminal merges stdout and stderr) the UTF-8 of its output events, or of its input
 * events for stdin, which is all that format keeps.
 */
export async function* streamBytes(meta: RecordingMeta, path: string, stream: RawStream, channel?: number): AsyncGenerator<Buffer> {
  if (meta.format === 'raw') return yield* rawStreamBytes(path, stream, channel);
  if (meta.format !== 'asciicast' || stream === 'stderr') return;
  const type = stream === 'stdout' ? 'o' : 'i';
  for await (const e of castEvents(path)) if (e[1] === type) yield Buffer.from(e[2], 'utf8');
}

/** A recording as asciicast v2 text: the file itself, or a raw one rendered (raw-reader.ts). */
export async function recordingCast(meta: RecordingMeta, path: string): Promise<string> {
  return meta.format === 'raw' ? rawCastText(path) : readFile(path, 'utf8');
}
