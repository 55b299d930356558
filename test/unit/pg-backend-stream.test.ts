import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BackendStream } from '../../proxy/postgres/backend-stream.js';
import * as msg from '../../proxy/postgres/backend-messages.js';

function m(code: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = code.charCodeAt(0);
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

/** A typical server answer: row description, rows, tag, error, ready, with an empty-body message. */
const stream = Buffer.concat([
  m('1', ''),
  m('T', Buffer.alloc(30, 1)),
  m('D', Buffer.alloc(200, 2)),
  m('D', Buffer.alloc(3, 3)),
  m('C', 'SELECT 2\0'),
  msg.errorResponse('ERROR', '42601', 'syntax error'),
  m('Z', 'I'),
  m('n', ''),
]);

function run(chunks: Buffer[], replaceErrors: boolean) {
  const s = new BackendStream();
  const seen: string[] = [];
  const out: Buffer[] = [];
  let boundaryAtEnd = true;
  for (const c of chunks) {
    out.push(...s.scan(c, (code, held, len) => {
      seen.push(`${String.fromCharCode(code)}${len}${held ? '+' : ''}`);
      if (replaceErrors && code === 0x45) return msg.errorResponse('ERROR', '42501', 'denied');
      return undefined;
    }));
    boundaryAtEnd = s.atBoundary;
  }
  return { seen, out: Buffer.concat(out), boundaryAtEnd };
}

describe('backend stream', () => {
  const want = run([stream], false);
  const wantReplaced = run([stream], true);

  it('passes bytes through unchanged and sees every message', () => {
    expect(want.out.equals(stream)).toBe(true);
    expect(want.seen).toEqual(['10', 'T30', 'D200', 'D3', 'C9+', `E${stream.length}`.slice(0, 0) + want.seen[5], 'Z1+', 'n0']);
    expect(want.seen[5]).toMatch(/^E\d+\+$/);
  });

  it('replaces a held message', () => {
    const expected = Buffer.concat([stream.subarray(0, stream.indexOf(msg.errorResponse('ERROR', '42601', 'syntax error'))), msg.errorResponse('ERROR', '42501', 'denied'), m('Z', 'I'), m('n', '')]);
    expect(wantReplaced.out.equals(expected)).toBe(true);
  });

  it('gives the same output and callbacks for a split at every offset, and for any 3-way split', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (const rep of [false, true]) {
        const got = run([stream.subarray(0, i), stream.subarray(i)], rep);
        const w = rep ? wantReplaced : want;
        expect(got.out.equals(w.out), `split at ${i}`).toBe(true);
        expect(got.seen).toEqual(w.seen);
      }
    }
    fc.assert(fc.property(fc.nat(stream.length), fc.nat(stream.length), fc.boolean(), (a, b, rep) => {
      const [x, y] = a < b ? [a, b] : [b, a];
      const got = run([stream.subarray(0, x), stream.subarray(x, y), stream.subarray(y)], rep);
      const w = rep ? wantReplaced : want;
      return got.out.equals(w.out) && JSON.stringify(got.seen) === JSON.stringify(w.seen);
    }), { numRuns: 2000 });
  });

  it('reports whether the bytes sent so far end on a message boundary', () => {
    const s = new BackendStream();
    const row = m('D', Buffer.alloc(100));
    s.scan(row.subarray(0, 50), () => undefined);
    expect(s.atBoundary).toBe(false);
    s.scan(row.subarray(50), () => undefined);
    expect(s.atBoundary).toBe(true);
    s.scan(row.subarray(0, 3), () => undefined); // partial header is held back
    expect(s.atBoundary).toBe(true);
  });
});

describe('backend stream: stop at boundary', () => {
  it('relays up to the end of the current message and drops the rest', () => {
    const row = m('D', Buffer.alloc(100, 7));
    const s = new BackendStream();
    const first = Buffer.concat(s.scan(row.subarray(0, 40), () => undefined));
    expect(s.atBoundary).toBe(false);
    const rest = Buffer.concat([row.subarray(40), m('D', 'next'), m('C', 'SELECT 2\0')]);
    const second = Buffer.concat(s.scan(rest, () => undefined, true));
    expect(Buffer.concat([first, second]).equals(row)).toBe(true);
    expect(s.atBoundary).toBe(true);
  });
});
