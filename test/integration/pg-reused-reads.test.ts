import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import { reusedReadCounts } from '../../proxy/postgres/reused-reads.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';

/**
 * The upstream leg reads into one reused buffer (proxy/postgres/reused-reads.ts): each read is
 * parsed in place and only what outlives it is copied. Here the server's messages arrive one byte
 * per read (a scripted target), and a result of many 64 KB rows and one row bigger than the buffer
 * reaches a client that stops reading for a while (writes back up, so the buffer must not be
 * reused under them); what the client gets and what is recorded must be exact.
 */

let cp: TestControlPlane;
let broker: Listener;
let trickle: Server;

/** One backend message: type byte, Int32 length, body. */
function message(code: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(code, 0, 'latin1');
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const cstr = (s: string) => Buffer.from(`${s}\0`);
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const dataRow = (v: string) => message('D', Buffer.concat([int16(1), int32(Buffer.byteLength(v)), Buffer.from(v)]));
const TRICKLED_ROWS = ['one', 'two', 'x'.repeat(300), ''];

/** Writes `bytes` one byte per segment (TCP_NODELAY, a macrotask apart), so each is its own read. */
async function writeByteByByte(s: Socket, bytes: Buffer): Promise<void> {
  for (let i = 0; i < bytes.length && !s.destroyed; i++) {
    s.write(bytes.subarray(i, i + 1));
    await new Promise((r) => setTimeout(r, 1));
  }
}

const PACED_ROWS = 1500;
const pacedRow = (i: number) => `${String(i).padStart(8, '0')}:`.repeat(900); // 8.1 KB: under the socket's 16 KiB write mark
const textColumn = Buffer.concat([int16(1), cstr('v'), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]);

/** 1500 DataRows of 8 KB, one per write a macrotask apart: each is one read of the proxy. */
async function writePaced(s: Socket): Promise<void> {
  s.write(message('T', textColumn));
  for (let i = 0; i < PACED_ROWS && !s.destroyed; i++) {
    s.write(dataRow(pacedRow(i)));
    await new Promise((r) => setImmediate(r));
  }
  s.write(Buffer.concat([message('C', cstr(`SELECT ${PACED_ROWS}`)), message('Z', Buffer.from('I'))]));
}

/**
 * A scripted target: cleartext login, then `select paced` is answered as writePaced does and any
 * other Query with RowDescription, the rows above, CommandComplete and ReadyForQuery, all of it
 * one byte per write.
 */
function startTrickleServer(): Promise<Server> {
  const server = createServer({ noDelay: true }, (s) => {
    let buf = Buffer.alloc(0);
    let started = false;
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!started) {
          if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
          buf = buf.subarray(buf.readInt32BE(0));
          started = true;
          s.write(message('R', int32(3))); // AuthenticationCleartextPassword
          continue;
        }
        if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return;
        const code = String.fromCharCode(buf[0]!);
        buf = buf.subarray(1 + buf.readInt32BE(1));
        if (code === 'p') {
          void writeByteByByte(s, Buffer.concat([
            message('R', int32(0)),
            message('S', Buffer.concat([cstr('client_encoding'), cstr('UTF8')])),
            message('S', Buffer.concat([cstr('standard_conforming_strings'), cstr('on')])),
            message('K', Buffer.concat([int32(4242), int32(99)])),
            message('Z', Buffer.from('I')),
          ]));
        } else if (code === 'Q' && buf.length === 0 && d.includes('select paced')) {
          void writePaced(s);
        } else if (code === 'Q') {
          void writeByteByByte(s, Buffer.concat([
            message('T', textColumn), ...TRICKLED_ROWS.map(dataRow), message('C', cstr(`SELECT ${TRICKLED_ROWS.length}`)), message('Z', Buffer.from('I')),
          ]));
        } else if (code === 'X') {
          s.end();
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function statements(): Promise<Record<string, any>[]> {
  const dir = join(cp.dataDir, 'recordings');
  const out: Record<string, any>[] = [];
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) if (line) out.push(JSON.parse(line));
  }
  return out.filter((e) => e.type === 'statement');
}

async function eventually<T>(fn: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 60; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  trickle = await startTrickleServer();
  const targets: Target[] = [
    { name: 'trickle', protocol: 'postgres', host: '127.0.0.1', port: (trickle.address() as { port: number }).port, database: 'd', tls: 'disable', logins: { u: { secret: 'trickle-pw' } }, defaultAction: 'allow' },
    { name: 'real', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'prefer', logins: { postgres: { secret: 'real-pw' } }, defaultAction: 'allow' },
  ];
  cp = await startControlPlane({ targets });
  await cp.setSecret('trickle-pw', 'whatever');
  await cp.setSecret('real-pw', 'unused-trust');
  broker = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'trickle', 'u');
  await cp.grant('alice', 'real', 'postgres');
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  trickle?.close();
});

describe('postgres upstream reads into a reused buffer', () => {
  it('relays and records a server answer that arrives one byte per read', async () => {
    const reads0 = reusedReadCounts.reads;
    const c = new pg.Client({ host: '127.0.0.1', port: broker.port, user: 'u', database: 'trickle', password: await cp.token('alice') });
    await c.connect();
    const r = await c.query('select v from anywhere');
    await c.end();
    expect(r.rows.map((x) => x.v)).toEqual(TRICKLED_ROWS);
    expect(r.command).toBe('SELECT');
    // The answer's bytes came through the reused buffer, nearly one per read.
    const answerBytes = TRICKLED_ROWS.reduce((n, v) => n + 11 + v.length, 0) + 60;
    expect(reusedReadCounts.reads - reads0).toBeGreaterThan(answerBytes * 0.5);
    const st = await eventually(async () => (await statements()).find((e) => e.sql === 'select v from anywhere'), 'the statement line');
    expect(st).toMatchObject({ tag: `SELECT ${TRICKLED_ROWS.length}`, rows: TRICKLED_ROWS.length });
  });

  it('a TLS client: small answers are copied out, so the buffer is not replaced for every read', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: broker.port, user: 'u', database: 'trickle', password: await cp.token('alice'), ssl: { rejectUnauthorized: false } });
    await c.connect();
    const reads0 = reusedReadCounts.reads;
    const fresh0 = reusedReadCounts.fresh;
    for (let i = 0; i < 3; i++) expect((await c.query(`select v from anywhere -- ${i}`)).rows.map((x) => x.v)).toEqual(TRICKLED_ROWS);
    await c.end();
    // Hundreds of reads (the answers arrive a byte per read), and each one's bytes went to the TLS
    // client: before the copy, every one of them pinned the buffer and took a fresh 64 KiB.
    expect(reusedReadCounts.reads - reads0).toBeGreaterThan(300);
    expect(reusedReadCounts.fresh - fresh0).toBe(0);
    const st = await eventually(async () => (await statements()).find((e) => e.sql === 'select v from anywhere -- 2'), 'the statement line');
    expect(st).toMatchObject({ tag: `SELECT ${TRICKLED_ROWS.length}`, rows: TRICKLED_ROWS.length });
  });

  it('reads that arrive while writes to a stopped client wait go into a fresh buffer: every row exact', async () => {
    const fresh0 = reusedReadCounts.fresh;
    const c = new pg.Client({ host: '127.0.0.1', port: broker.port, user: 'u', database: 'trickle', password: await cp.token('alice') });
    await c.connect();
    const q = c.query('select paced');
    const stream = (c as unknown as { connection: { stream: Socket } }).connection.stream;
    stream.pause();
    await new Promise((r) => setTimeout(r, 1500));
    stream.resume();
    const r = await q;
    await c.end();
    // The fault this is about fired: a write waited with bytes of the read buffer (a write under
    // the socket's high-water mark returns true, so reading goes on while it waits).
    expect(reusedReadCounts.fresh).toBeGreaterThan(fresh0);
    expect(r.rows).toHaveLength(PACED_ROWS);
    r.rows.forEach((row, i) => expect(row.v).toBe(pacedRow(i)));
  });

  it('a large result to a client that stops reading: rows exact (one bigger than the buffer), buffer replaced under pending writes', async () => {
    const fresh0 = reusedReadCounts.fresh;
    const c = new pg.Client({ host: '127.0.0.1', port: broker.port, user: 'postgres', database: 'real', password: await cp.token('alice') });
    await c.connect();
    const sql = "select i, repeat(md5(i::text), 2000) as v from generate_series(1, 400) i union all select 0, repeat('y', 300000) || 'end'";
    const q = c.query(sql);
    const stream = (c as unknown as { connection: { stream: Socket } }).connection.stream;
    stream.pause();
    await new Promise((r) => setTimeout(r, 500));
    stream.resume();
    const r = await q;
    await c.end();
    expect(r.rows).toHaveLength(401);
    for (const row of r.rows.slice(0, 400)) expect(row.v).toBe(createHash('md5').update(String(row.i)).digest('hex').repeat(2000));
    expect(r.rows[400].v).toBe(`${'y'.repeat(300000)}end`);
    // The fault this is about fired: the writes to the client backed up, so reads went into fresh buffers.
    expect(reusedReadCounts.fresh).toBeGreaterThan(fresh0);
    const st = await eventually(async () => (await statements()).find((e) => e.sql === sql), 'the statement line');
    expect(st).toMatchObject({ tag: 'SELECT 401', rows: 401 });
  });
});
