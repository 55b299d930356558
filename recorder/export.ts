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

/** A recording as plain text: terminal output without escape sequences, or one line per statement. */
export async function recordingText(meta: RecordingMeta, path: string): Promise<string> {
  const raw = await readFile(path, 'utf8');
  return meta.format === 'asciicast' ? asciicastToText(raw) : jsonlToText(raw);
}
