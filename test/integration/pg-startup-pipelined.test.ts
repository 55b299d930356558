import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import pg from 'pg';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { Listener } from '../../proxy/broker.types.js';

/**
 * The first bytes of a connection as clients really send them: a startup packet with other
 * messages pipelined behind it in one TCP write (node-postgres `connect(); end()`), and the
 * SSLRequest / GSSENCRequest edge cases. Each answer is compared with what PostgreSQL does:
 * a client that says Terminate before logging in gets a quiet close, never an ErrorResponse.
 */

let cp: TestControlPlane;
let broker: Listener;

beforeAll(async () => {
  cp = await startControlPlane({ targets: [{ name: 'pipedb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'prefer', logins: { postgres: { secret: 'unused' } }, defaultAction: 'allow' }] });
  broker = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
});

function startupPacket(params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0${v}\0`)]), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}
const terminate = Buffer.from([0x58, 0, 0, 0, 4]);
const request = (code: number) => { const b = Buffer.alloc(8); b.writeInt32BE(8, 0); b.writeInt32BE(code, 4); return b; };
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

/** Sends `bytes` in one write and collects everything the proxy answers until it closes. */
function exchange(bytes: Buffer): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(broker.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); resolve({ data: Buffer.concat(chunks), closed: false }); }, 10_000);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => { clearTimeout(timer); resolve({ data: Buffer.concat(chunks), closed: true }); });
  });
}

/** Backend message type bytes in order. */
function codes(data: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  while (off + 5 <= data.length) {
    out.push(String.fromCharCode(data[off]!));
    off += 1 + data.readInt32BE(off + 1);
  }
  return out;
}

describe('postgres broker: bytes pipelined behind the startup packet', () => {
  it('startup + Terminate in one write: asked for the password, then a quiet close (no ErrorResponse)', async () => {
    const { data, closed } = await exchange(Buffer.concat([startupPacket({ user: 'postgres', database: 'pipedb' }), terminate]));
    expect(closed).toBe(true);
    expect(codes(data)).toEqual(['R']);
  });

  it('Terminate before the startup packet (what node-postgres sends for connect(); end()): a quiet close', async () => {
    const { data, closed } = await exchange(Buffer.concat([terminate, startupPacket({ user: 'postgres', database: 'pipedb' })]));
    expect(closed).toBe(true);
    expect(data.length).toBe(0);
  });

  it('node-postgres connect() and end() at once: the socket closes with no error, exactly as against PostgreSQL itself', async () => {
    // node-postgres leaves both promises unsettled here, direct or proxied; what the user sees is
    // the socket closing and whether an error was raised, so that is what is compared.
    const attempt = (port: number) => new Promise<{ errors: string[] }>((resolve) => {
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: port === 5432 ? 'postgres' : 'pipedb', password: 'not-a-token' });
      const errors: string[] = [];
      client.on('error', (e) => errors.push(e.message));
      client.connect().catch((e: Error) => errors.push(e.message));
      void client.end().catch((e: Error) => errors.push(e.message));
      const stream = (client as unknown as { connection: { stream: Socket } }).connection.stream;
      stream.once('close', () => setTimeout(() => resolve({ errors }), 50));
    });
    const direct = await attempt(5432);
    const proxied = await attempt(broker.port);
    expect(direct.errors).toEqual([]);
    expect(proxied.errors).toEqual(direct.errors);
  });

  it('GSSENCRequest + startup + Terminate in one write: N, then the password request, then a quiet close', async () => {
    const { data, closed } = await exchange(Buffer.concat([request(GSSENC_REQUEST), startupPacket({ user: 'postgres', database: 'pipedb' }), terminate]));
    expect(closed).toBe(true);
    expect(data[0]).toBe('N'.charCodeAt(0));
    expect(codes(data.subarray(1))).toEqual(['R']);
  });

  it('SSLRequest with plaintext bytes behind it is refused, as PostgreSQL does (CVE-2021-23214)', async () => {
    const { data, closed } = await exchange(Buffer.concat([request(SSL_REQUEST), startupPacket({ user: 'postgres', database: 'pipedb' })]));
    expect(closed).toBe(true);
    expect(codes(data)).toEqual(['E']);
    expect(data.toString('latin1')).toContain('received unencrypted data after SSL request');
  });

  it('a password message split from the startup packet still works after the pipelined Terminate fix (wrong token refused, not a protocol error)', async () => {
    const token = Buffer.from('not-a-token\0');
    const pw = Buffer.concat([Buffer.from([0x70]), Buffer.alloc(4), token]);
    pw.writeInt32BE(4 + token.length, 1);
    const { data, closed } = await exchange(Buffer.concat([startupPacket({ user: 'postgres', database: 'pipedb' }), pw]));
    expect(closed).toBe(true);
    expect(codes(data)).toEqual(['R', 'E']);
    expect(data.toString('latin1')).toContain('28P01');
  });

  it('a connection that closes right after the startup packet leaves the proxy serving others', async () => {
    await new Promise<void>((resolve) => {
      const s = connect(broker.port, '127.0.0.1', () => s.end(startupPacket({ user: 'postgres', database: 'pipedb' })));
      s.resume(); // read the password request, so the close is seen
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    const { data } = await exchange(Buffer.concat([startupPacket({ user: 'postgres', database: 'pipedb' }), terminate]));
    expect(codes(data)).toEqual(['R']);
  });
});
