import { readFile } from 'node:fs/promises';
import type { RecordingMeta } from './recording.types.js';
import { asciicastToText } from './asciicast-text.js';

export type ExportFormat = 'asciicast' | 'text' | 'jsonl';

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

/** The recording in the asked format; throws on a format the protocol does not have. */
export async function exportRecording(meta: RecordingMeta, path: string, format: ExportFormat): Promise<{ contentType: string; body: string; ext: string }> {
  const raw = await readFile(path, 'utf8');
  if (format === 'text') {
    return { contentType: 'text/plain; charset=utf-8', body: meta.format === 'asciicast' ? asciicastToText(raw) : jsonlToText(raw), ext: 'txt' };
  }
  if (format === 'asciicast' && meta.format === 'asciicast') return { contentType: 'application/x-asciicast', body: raw, ext: 'cast' };
  if (format === 'jsonl' && meta.format === 'jsonl') return { contentType: 'application/jsonl', body: raw, ext: 'jsonl' };
  throw new Error(`a ${meta.protocol} recording cannot be exported as ${format}`);
}
