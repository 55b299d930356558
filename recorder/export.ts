import { readFile } from 'node:fs/promises';
import type { RecordingMeta } from './recording.types.js';

export type ExportFormat = 'asciicast' | 'text' | 'jsonl';

// CSI, OSC, and other escape sequences; what is left is the text a terminal would print.
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** Output of an asciicast v2 file as plain text: escape sequences removed, CRLF folded. */
export function castToText(cast: string): string {
  const out: string[] = [];
  for (const line of cast.split('\n').slice(1)) {
    if (!line) continue;
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      break; // a torn last line after a crash: everything before it is still good
    }
    if (Array.isArray(ev) && ev[1] === 'o' && typeof ev[2] === 'string') out.push(ev[2]);
  }
  return stripAnsi(out.join('').replace(/\r\n/g, '\n')).replace(/\r/g, '');
}

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
    const time = typeof ev.time === 'string' ? ev.time : '';
    if (typeof ev.sql === 'string' || typeof ev.text === 'string') {
      const sql = String(ev.sql ?? ev.text);
      const outcome = ev.error ? `ERROR ${String((ev.error as Record<string, unknown>).code ?? ev.sqlstate ?? '')}` : String(ev.tag ?? ev.command ?? '');
      out.push(`${time}  ${sql.replace(/\s+/g, ' ')}  -- ${outcome}`);
    } else if (typeof ev.type === 'string') {
      out.push(`${time}  [${ev.type}]`);
    }
  }
  return out.join('\n') + '\n';
}

/** The recording in the asked format; throws on a format the protocol does not have. */
export async function exportRecording(meta: RecordingMeta, path: string, format: ExportFormat): Promise<{ contentType: string; body: string; ext: string }> {
  const raw = await readFile(path, 'utf8');
  if (format === 'text') {
    return { contentType: 'text/plain; charset=utf-8', body: meta.format === 'asciicast' ? castToText(raw) : jsonlToText(raw), ext: 'txt' };
  }
  if (format === 'asciicast' && meta.format === 'asciicast') return { contentType: 'application/x-asciicast', body: raw, ext: 'cast' };
  if (format === 'jsonl' && meta.format === 'jsonl') return { contentType: 'application/jsonl', body: raw, ext: 'jsonl' };
  throw new Error(`a ${meta.protocol} recording cannot be exported as ${format}`);
}
