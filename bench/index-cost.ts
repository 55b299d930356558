/**
 * CPU the index worker spends per indexed unit, without sessions or sockets around it: a
 * Postgres query log of --statements pgbench-like statements (each one command event: extract,
 * then write in batches of 2,000 as the worker does), and --mb MiB of terminal output lines.
 * process.cpuUsage (user+system) of this process, which is all the work.
 *
 *   npm run bench index-cost -- [--statements 50000] [--mb 20]
 */
import { rmSync, mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueryLogExtractor } from '../recorder/index/extract-query-log.js';
import { AsciicastExtractor } from '../recorder/index/extract-asciicast.js';
import { SqliteIndexStore } from '../recorder/index/sqlite-index.js';
import type { IndexOp } from '../recorder/index/index.types.js';
import type { RecordingMeta } from '../recorder/recording.types.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('statements', 50_000);
const MB = arg('mb', 20);
const dir = mkdtempSync(join(tmpdir(), 'pam-index-cost-'));
const cpu = (fn: () => void) => {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const meta = (id: string, protocol: 'ssh' | 'postgres'): RecordingMeta => ({ id, protocol, format: protocol === 'ssh' ? 'asciicast' : 'jsonl', user: 'u', subject: 'u', login: 'l', target: 't', start: new Date().toISOString(), status: 'live', bytes: 0 });

const store = new SqliteIndexStore(join(dir, 'index.sqlite'));
const write = (id: string, ops: IndexOp[]) => {
  for (let i = 0; i < ops.length; i += 2000) store.batch(() => store.apply(id, ops.slice(i, i + 2000)));
};

const lines: string[] = [];
const t0 = Date.now();
for (let i = 0; i < N; i++) lines.push(`{"t":"${new Date(t0 + i).toISOString()}","type":"statement","protocol":"simple","sql":"SELECT abalance FROM pgbench_accounts WHERE aid = ${(i * 7919) % 500000};","duration_ms":0.1,"tag":"SELECT 1","rows":1,"verdict":{"action":"allow"}}`);
store.upsertSession(meta('0mx5cxr06-00000001', 'postgres'), { denials: 0, commands: 0 });
const sqlOps: IndexOp[] = [];
const ex = new QueryLogExtractor();
const extractMs = cpu(() => { for (const l of lines) ex.line(l, sqlOps); });
const writeMs = cpu(() => write('0mx5cxr06-00000001', sqlOps));

const words = ['error', 'nginx', 'started', 'kernel', 'disk', 'ok', 'connection', 'timeout', 'worker', 'reload'];
const outLines: string[] = [];
let bytes = 0;
for (let i = 0; bytes < MB * 1048576; i++) {
  const l = JSON.stringify([i / 100, 'o', `${new Date(t0 + i).toISOString()} ${words[i % 10]} id=${i} ${words[(i * 7) % 10]} took ${i % 997} ms\r\n`]);
  outLines.push(l);
  bytes += l.length + 1;
}
store.upsertSession(meta('0mx5cxr06-00000002', 'ssh'), { denials: 0, commands: 0 });
const outOps: IndexOp[] = [];
const ax = new AsciicastExtractor(t0);
const outMs = cpu(() => {
  for (const l of outLines) ax.line(l, outOps);
  ax.end(outOps);
  write('0mx5cxr06-00000002', outOps);
});
store.close();
rmSync(dir, { recursive: true, force: true });
const f = (x: number) => +x.toFixed(1);
console.log(JSON.stringify({
  load: loadavg().map(f), statements: N,
  usPerStatement: { extract: f((extractMs * 1000) / N), write: f((writeMs * 1000) / N), total: f(((extractMs + writeMs) * 1000) / N) },
  outputMiB: f(bytes / 1048576), cpuMsPerMiBOutput: f(outMs / (bytes / 1048576)),
}));
