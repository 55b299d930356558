import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import {
  decodeFrontendMessage,
  decodeStartupPacket,
  FrontendFramer,
  ProtocolError,
  type FrontendMessage,
} from '../../proxy/postgres/frontend-codec.js';

/** Client messages as node-postgres writes them, so the codec is checked against a real encoder. */
function sample(): { bytes: Buffer; expected: FrontendMessage['type'][] } {
  const parts = [
    serialize.query('select 1; select \'é\''),
    serialize.parse({ name: 'S_1', text: 'select $1::int + $2', types: [23, 0] }),
    serialize.bind({ portal: 'P1', statement: 'S_1', values: ['41', Buffer.from([0, 1, 2])], valueMapper: undefined as never }),
    serialize.describe({ type: 'P', name: 'P1' }),
    serialize.execute({ portal: 'P1', rows: 10 }),
    serialize.flush(),
    serialize.sync(),
    serialize.close({ type: 'S', name: 'S_1' }),
    serialize.copyData(Buffer.from('1\tone\n')),
    serialize.copyDone(),
    serialize.copyFail('nope'),
    serialize.password('tok.en'),
    serialize.end(),
  ];
  return {
    bytes: Buffer.concat(parts),
    expected: ['query', 'parse', 'bind', 'describe', 'execute', 'flush', 'sync', 'close', 'copy-data', 'copy-done', 'copy-fail', 'password', 'terminate'],
  };
}

function decodeAll(framer: FrontendFramer, chunks: Buffer[]): FrontendMessage[] {
  const out: FrontendMessage[] = [];
  for (const c of chunks) for (const f of framer.push(c)) out.push(decodeFrontendMessage(f.code, f.body));
  return out;
}

describe('frontend codec', () => {
  it('decodes every message type node-postgres sends', () => {
    const { bytes, expected } = sample();
    const f = new FrontendFramer(1 << 20);
    f.regular();
    const msgs = decodeAll(f, [bytes]);
    expect(msgs.map((m) => m.type)).toEqual(expected);
    expect(msgs[0]).toEqual({ type: 'query', sql: "select 1; select 'é'" });
    expect(msgs[1]).toEqual({ type: 'parse', name: 'S_1', sql: 'select $1::int + $2', paramTypes: [23, 0] });
    const bind = msgs[2] as Extract<FrontendMessage, { type: 'bind' }>;
    expect(bind.portal).toBe('P1');
    expect(bind.statement).toBe('S_1');
    expect(bind.params.map((p) => p?.toString('hex'))).toEqual([Buffer.from('41').toString('hex'), '000102']);
    expect(bind.paramFormats).toEqual([0, 1]);
    expect(msgs[3]).toEqual({ type: 'describe', kind: 'P', name: 'P1' });
    expect(msgs[4]).toEqual({ type: 'execute', portal: 'P1', maxRows: 10 });
    expect(msgs[7]).toEqual({ type: 'close', kind: 'S', name: 'S_1' });
    expect(msgs[8]).toEqual({ type: 'copy-data', bytes: 6 });
    expect(msgs[10]).toEqual({ type: 'copy-fail', message: 'nope' });
    expect(f.pending).toBe(0);
  });

  it('gives the same messages when the stream is split at every offset', () => {
    const { bytes } = sample();
    const whole = new FrontendFramer(1 << 20);
    whole.regular();
    const want = decodeAll(whole, [bytes]);
    for (let i = 0; i <= bytes.length; i++) {
      const f = new FrontendFramer(1 << 20);
      f.regular();
      const got = decodeAll(f, [Buffer.from(bytes.subarray(0, i)), Buffer.from(bytes.subarray(i))]);
      expect(got, `split at ${i}`).toEqual(want);
      expect(f.pending).toBe(0);
    }
  });

  it('gives the same messages when fed one byte at a time', () => {
    const { bytes } = sample();
    const f = new FrontendFramer(1 << 20);
    f.regular();
    const got = decodeAll(f, [...bytes].map((b) => Buffer.from([b])));
    expect(got.map((m) => m.type)).toEqual(sample().expected);
  });

  it('decodes startup-phase packets and splits them at every offset', () => {
    const ssl = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    const cancel = Buffer.from([0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xfe]);
    const startup = serialize.startup({ user: 'postgres', database: 'db1', application_name: 'psql' });
    const all = Buffer.concat([ssl, cancel, startup]);
    for (let i = 0; i <= all.length; i++) {
      const f = new FrontendFramer(1 << 20);
      const frames = [...f.push(all.subarray(0, i)), ...f.push(all.subarray(i))];
      expect(frames.map((fr) => decodeStartupPacket(fr.body))).toEqual([
        { type: 'ssl-request' },
        { type: 'cancel-request', processId: 7, secretKey: -2 },
        { type: 'startup', protocolVersion: 196608, params: { user: 'postgres', database: 'db1', application_name: 'psql', client_encoding: 'UTF8' } },
      ]);
    }
  });

  it('rejects garbage before startup, bad lengths, unknown types and oversize messages', () => {
    const f = new FrontendFramer(1 << 20);
    expect(() => f.push(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toThrow(ProtocolError);
    const g = new FrontendFramer(100);
    g.regular();
    expect(() => g.push(Buffer.from([0x51, 0, 0, 0, 2]))).toThrow(/invalid message length/);
    const h = new FrontendFramer(100);
    h.regular();
    expect(() => h.push(Buffer.from([0x51, 0, 0, 1, 0]))).toThrow(/over the limit/);
    expect(() => decodeFrontendMessage(0x7a, Buffer.alloc(0))).toThrow(/invalid frontend message type/);
    expect(() => decodeFrontendMessage(0x51, Buffer.from('no terminator'))).toThrow(/unterminated/);
    expect(() => decodeFrontendMessage(0x42, Buffer.from([0, 0, 0x7f, 0xff]))).toThrow(ProtocolError);
    expect(() => decodeStartupPacket(Buffer.from([0, 2, 0, 0, 0]))).toThrow(/unsupported frontend protocol/);
  });

  it('random bytes only ever raise ProtocolError and always finish (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.nat(300), (arr, startup, cut) => {
        const bytes = Buffer.from(arr);
        const f = new FrontendFramer(1024);
        if (!startup) f.regular();
        try {
          for (const c of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
            for (const fr of f.push(c)) {
              if (startup) decodeStartupPacket(fr.body);
              else decodeFrontendMessage(fr.code, fr.body);
            }
          }
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('mutated valid streams only ever raise ProtocolError (fast-check)', () => {
    const { bytes } = sample();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (muts) => {
        const b = Buffer.from(bytes);
        for (const [i, v] of muts) b[i] = v;
        const f = new FrontendFramer(4096);
        f.regular();
        try {
          for (const fr of f.push(b)) decodeFrontendMessage(fr.code, fr.body);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('gathers a large message arriving in many chunks without re-concatenating each time', () => {
    const big = serialize.copyData(Buffer.alloc(200_000, 0x61));
    const f = new FrontendFramer(1 << 20);
    f.regular();
    let frames = 0;
    for (let i = 0; i < big.length; i += 1000) frames += f.push(big.subarray(i, i + 1000)).length;
    expect(frames).toBe(1);
    expect(f.pending).toBe(0);
  });
});
