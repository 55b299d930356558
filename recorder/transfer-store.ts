import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { access, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { RecordingFile } from './recording-file.js';

const SHA = /^[0-9a-f]{64}$/;

/**
 * Contents of files moved through SSH (sftp, scp) for targets with
 * `recording: { transfers: content }`: `recordings/transfers/SHA256`, one file per distinct
 * content however often it moved. Each content streams into a temporary file through
 * RecordingFile (staged writes, its own SHA-256) and is renamed to its digest only when that
 * digest matches the one the transfer record carries.
 */
export class TransferStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  path(sha256: string): string {
    if (!SHA.test(sha256)) throw new Error('not a SHA-256');
    return join(this.dir, sha256);
  }

  /** A sink for one file's content (proxy/ssh/file-content.ts ContentSink). */
  sink(): { append(data: Buffer): void; commit(sha256: string): Promise<void>; abort(): Promise<void> } {
    const tmp = join(this.dir, `.part-${randomBytes(6).toString('hex')}`);
    const opened = RecordingFile.create(tmp);
    const early: Buffer[] = [];
    let file: RecordingFile | undefined;
    void opened.then((f) => {
      file = f;
      for (const b of early.splice(0)) f.append(b);
    }, () => undefined);
    const close = async () => (await opened).close();
    return {
      append: (data) => {
        if (file) file.append(Buffer.from(data));
        else early.push(Buffer.from(data));
      },
      commit: async (sha256) => {
        const got = await close();
        if (got !== sha256) {
          await unlink(tmp).catch(() => undefined);
          throw new Error(`stored content hashed ${got}, the transfer ${sha256}`);
        }
        const dest = this.path(sha256);
        if (await access(dest).then(() => true, () => false)) await unlink(tmp);
        else await rename(tmp, dest);
      },
      abort: async () => {
        await close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
      },
    };
  }
}
