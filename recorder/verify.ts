import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';

/**
 * SHA-256 (hex) of a recording's data file as it is on disk now, read as a stream (an
 * hour-long recording never sits in memory). recorder/evidence/ compares it with the seal.
 */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
