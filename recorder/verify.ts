import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { RecordingMeta } from './recording.types.js';

export interface Verification {
  id: string;
  status: RecordingMeta['status'];
  /** The SHA-256 sealed into the catalog entry at close; null while live or when sealing failed. */
  sealed: string | null;
  /** The SHA-256 of the data file as it is now. */
  actual: string;
  /** True when they match, false when the file changed since it was sealed, null when there is no seal. */
  ok: boolean | null;
}

/** SHA-256 of a file, read as a stream (an hour-long recording never sits in memory). */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Checks a recording's data file against the seal in its catalog entry. */
export async function verifyRecording(meta: RecordingMeta, path: string): Promise<Verification> {
  const sealed = meta.sha256 ?? null;
  const actual = await fileSha256(path);
  return { id: meta.id, status: meta.status, sealed, actual, ok: sealed ? sealed === actual : null };
}
