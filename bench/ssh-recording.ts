/**
 * The SSH recording path alone, in-process: base64 text (what `cat FILE` sends) in 32 KiB
 * chunks, as ssh2 delivers them, through ChannelTap → AsciicastWriter → RecordingFile to a temp
 * file. Reports CPU ms per MiB (user + system of this process, including the file writes), the
 * number to compare between versions when the machine's load makes MB/s through sshd noisy.
 *
 *   node bin/run-ts.js bench/ssh-recording.ts [--mb 200] [--runs 3]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsciicastWriter } from '../recorder/asciicast-writer.js';
import { ChannelTap } from '../proxy/ssh/channel-tap.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MB = arg('mb', 200);
const RUNS = arg('runs', 3);
const CHUNK = 32 * 1024;

// A pool of distinct chunks (each a fresh Buffer, as ssh2 allocates one per packet).
const text = Buffer.from(randomBytes(24 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\n'));
const pool: Buffer[] = [];
for (let i = 0; i + CHUNK <= text.length; i += CHUNK) pool.push(text.subarray(i, i + CHUNK));
const total = Math.floor((MB * 1024 * 1024) / CHUNK);

const dir = await mkdtemp(join(tmpdir(), 'pam-rec-bench-'));
const results: { cpuMsPerMB: number; MBps: number }[] = [];
for (let r = 0; r < RUNS; r++) {
  const w = await AsciicastWriter.create(`r${r}`, join(dir, `r${r}.cast`), { width: 80, height: 24, env: {}, title: 'bench' });
  const tap = new ChannelTap(w, { maskUnechoed: true });
  const cpu = process.cpuUsage();
  const t = process.hrtime.bigint();
  for (let i = 0; i < total; i++) {
    tap.output(Buffer.from(pool[i % pool.length]!));
    // Relays wait for the file when it falls behind; so does this loop.
    if (w.backlogged) await w.drained();
    else if (i % 64 === 0) await new Promise((res) => setImmediate(res));
  }
  await w.close('done');
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  const used = process.cpuUsage(cpu);
  const mb = (total * CHUNK) / 1024 / 1024;
  results.push({ cpuMsPerMB: +((used.user + used.system) / 1000 / mb).toFixed(2), MBps: +(mb / s).toFixed(0) });
}
console.log(JSON.stringify({ mb: MB, runs: results }));
await rm(dir, { recursive: true, force: true });
