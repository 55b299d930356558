import { describe, expect, it } from 'vitest';
import { StatementTracker, DENIED_PLACEHOLDER, type ReviewRequest } from '../../proxy/postgres/statement-tracker.js';
import { ReviewGate, type HeldItem } from '../../proxy/postgres/review-gate.js';
import * as msg from '../../proxy/postgres/backend-messages.js';
import type { Verdict } from '../../policies/policy.types.js';

function m(code: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = code.charCodeAt(0);
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}
const HELD = new Set(['C', 'E', 'Z']);

function setup(check?: (sql: string) => Verdict, more: { canHold?: boolean; checkFastpath?: () => Verdict } = {}) {
  const lines: any[] = [];
  const t = new StatementTracker({ redactParameters: false, check, ...more, record: (l) => lines.push(JSON.parse(l)) });
  /** Feeds server messages; returns what the client would get instead (if anything). */
  const server = (...msgs: Buffer[]) => msgs.map((b) => t.onBackend(b[0]!, HELD.has(String.fromCharCode(b[0]!)) ? b : undefined, b.length - 5));
  return { t, lines, server };
}

describe('statement tracker', () => {
  it('pairs a pipelined extended batch whose second statement fails, then recovers at Sync', () => {
    const { t, lines, server } = setup();
    t.onFrontend({ type: 'parse', name: 'a', sql: 'select 1', paramTypes: [] });
    t.onFrontend({ type: 'bind', portal: '', statement: 'a', paramFormats: [], params: [], resultFormats: [] });
    t.onFrontend({ type: 'execute', portal: '', maxRows: 0 });
    t.onFrontend({ type: 'parse', name: 'b', sql: 'select 1/0', paramTypes: [] });
    t.onFrontend({ type: 'bind', portal: '', statement: 'b', paramFormats: [], params: [], resultFormats: [] });
    t.onFrontend({ type: 'execute', portal: '', maxRows: 0 });
    t.onFrontend({ type: 'parse', name: 'c', sql: 'select 3', paramTypes: [] });
    t.onFrontend({ type: 'sync' });
    t.onFrontend({ type: 'parse', name: 'd', sql: 'select $1::int', paramTypes: [] });
    t.onFrontend({ type: 'bind', portal: 'p', statement: 'd', paramFormats: [1], params: [Buffer.from([0, 0, 0, 9])], resultFormats: [] });
    t.onFrontend({ type: 'execute', portal: 'p', maxRows: 0 });
    t.onFrontend({ type: 'sync' });
    expect(t.outstanding).toBe(12);
    server(m('1'), m('2'), m('D', 'x'), m('C', 'SELECT 1\0'), m('1'), m('2'), msg.errorResponse('ERROR', '22012', 'division by zero'), m('Z', 'I'));
    server(m('1'), m('2'), m('D', 'y'), m('C', 'SELECT 1\0'), m('Z', 'T'));
    expect(t.outstanding).toBe(0);
    expect(t.txStatus).toBe('T');
    expect(lines.map((l) => [l.sql, l.tag ?? null, l.rows ?? null, l.error?.sqlstate ?? null])).toEqual([
      ['select 1', 'SELECT 1', 1, null],
      ['select 1/0', null, 0, '22012'],
      ['select $1::int', 'SELECT 1', 1, null],
    ]);
    expect(lines[2]).toMatchObject({ protocol: 'extended', statement: 'd', portal: 'p', params: [{ hex: '00000009' }] });
  });

  it('swaps a denied Parse for a failing placeholder and the server error for 42501', () => {
    const { t, lines, server } = setup((sql) => (/drop/i.test(sql) ? { action: 'deny', rule: 'r1', message: 'no drops' } : { action: 'allow' }));
    const sent = t.onFrontend({ type: 'parse', name: 's', sql: 'DROP TABLE x', paramTypes: [] });
    expect(sent?.toString()).toContain(DENIED_PLACEHOLDER);
    expect(sent?.toString()).not.toContain('DROP');
    t.onFrontend({ type: 'bind', portal: '', statement: 's', paramFormats: [], params: [], resultFormats: [] });
    t.onFrontend({ type: 'execute', portal: '', maxRows: 0 });
    t.onFrontend({ type: 'sync' });
    const [rep, z] = server(msg.errorResponse('ERROR', '42601', 'syntax error at or near "DENIED"'), m('Z', 'E'));
    expect(rep?.toString()).toContain('42501');
    expect(rep?.toString()).toContain('no drops');
    expect(z).toBeUndefined();
    expect(lines[0]).toMatchObject({ sql: 'DROP TABLE x', error: { sqlstate: '42501', message: 'no drops' }, verdict: { action: 'deny', rule: 'r1' } });
    expect(t.txStatus).toBe('E');
  });

  it('records a multi-statement simple query once with every tag, and COPY byte counts', () => {
    const { t, lines, server } = setup();
    t.onFrontend({ type: 'query', sql: 'insert into t values (1); select 2' });
    server(m('C', 'INSERT 0 1\0'), m('T', 'x'), m('D', 'r'), m('C', 'SELECT 1\0'), m('Z', 'I'));
    t.onFrontend({ type: 'query', sql: 'copy t from stdin' });
    server(m('G', Buffer.alloc(3)));
    t.onFrontend({ type: 'copy-data', bytes: 10 });
    t.onFrontend({ type: 'copy-data', bytes: 5 });
    t.onFrontend({ type: 'copy-done' });
    server(m('C', 'COPY 2\0'), m('Z', 'I'));
    t.onFrontend({ type: 'query', sql: 'copy t to stdout' });
    server(m('H', Buffer.alloc(3)), m('d', 'abcdef'), m('d', 'gh'), m('c'), m('C', 'COPY 2\0'), m('Z', 'I'));
    expect(lines.map((l) => [l.tags ?? l.tag, l.rows, l.copy ?? null])).toEqual([
      [['INSERT 0 1', 'SELECT 1'], 2, null],
      ['COPY 2', 2, { direction: 'in', bytes: 15 }],
      ['COPY 2', 2, { direction: 'out', bytes: 8 }],
    ]);
  });
});

describe('statement tracker: fastpath', () => {
  it('refuses FunctionCall when a policy is on, records it when not', () => {
    const on = setup(() => ({ action: 'allow' }));
    const sent = on.t.onFrontend({ type: 'function-call', oid: 2249, argFormats: [], args: [], resultFormat: 0 });
    expect(sent?.toString()).toContain(DENIED_PLACEHOLDER);
    const [rep] = on.server(msg.errorResponse('ERROR', '42601', 'syntax error'), m('Z', 'I'));
    expect(rep?.toString()).toContain('fastpath function calls are refused');
    expect(on.lines[0]).toMatchObject({ protocol: 'function-call', error: { sqlstate: '42501' } });
    const off = setup();
    expect(off.t.onFrontend({ type: 'function-call', oid: 2249, argFormats: [], args: [], resultFormat: 0 })).toBeUndefined();
    off.server(m('V', Buffer.from([0, 0, 0, 1, 0x31])), m('Z', 'I'));
    expect(off.lines[0]).toMatchObject({ protocol: 'function-call', sql: '-- function call oid 2249' });
  });
});

describe('statement tracker: fastpath with a fastpath check', () => {
  it('allows and records when the check allows; refuses with the rule when it denies', () => {
    const ok = setup(() => ({ action: 'allow' }), { checkFastpath: () => ({ action: 'allow' }) });
    expect(ok.t.onFrontend({ type: 'function-call', oid: 952, argFormats: [], args: [], resultFormat: 0 })).toBeUndefined();
    ok.server(m('V', Buffer.from([0, 0, 0, 1, 0x31])), m('Z', 'I'));
    expect(ok.lines[0]).toMatchObject({ protocol: 'function-call' });
    expect(ok.lines[0].verdict).toBeUndefined();
    const no = setup(() => ({ action: 'allow' }), { checkFastpath: () => ({ action: 'deny', rule: 'no-file-functions', message: 'refused here' }) });
    expect(no.t.onFrontend({ type: 'function-call', oid: 952, argFormats: [], args: [], resultFormat: 0 })?.toString()).toContain(DENIED_PLACEHOLDER);
    const [rep] = no.server(msg.errorResponse('ERROR', '42601', 'syntax error'), m('Z', 'I'));
    expect(rep?.toString()).toContain('refused here');
    expect(no.lines[0]).toMatchObject({ verdict: { action: 'deny', rule: 'no-file-functions' }, error: { sqlstate: '42501' } });
  });
});

describe('statement tracker and review gate: holds', () => {
  const review = (): Verdict => ({ action: 'review', rule: 'r', message: 'needs review' });

  it('a review verdict becomes a ReviewRequest only when holds are available', () => {
    const off = setup(review);
    expect(Buffer.isBuffer(off.t.onFrontend({ type: 'query', sql: 'update t set x = 1' }))).toBe(true);
    const on = setup(review, { canHold: true });
    const r = on.t.onFrontend({ type: 'query', sql: 'update t set x = 1' }) as ReviewRequest;
    expect(r.kind).toBe('review');
    r.approve('hold_0000000000000001');
    on.server(m('C', 'UPDATE 1\0'), m('Z', 'I'));
    expect(on.lines[0]).toMatchObject({ tag: 'UPDATE 1', verdict: { action: 'review', hold: 'hold_0000000000000001', decision: 'approved' } });
  });

  it('a refused Parse is replaced; the server error becomes the decision message, the batch stays in sync', () => {
    const on = setup(review, { canHold: true });
    const r = on.t.onFrontend({ type: 'parse', name: 's1', sql: 'update t set x = $1', paramTypes: [] }) as ReviewRequest;
    on.t.onFrontend({ type: 'bind', portal: '', statement: 's1', paramFormats: [], params: [], resultFormats: [] });
    on.t.onFrontend({ type: 'execute', portal: '', maxRows: 0 });
    on.t.onFrontend({ type: 'sync' });
    expect(r.refuse({ hold: 'hold_0000000000000002', decision: 'denied' }, 'refused by an approver').toString()).toContain(DENIED_PLACEHOLDER);
    const [err, z] = on.server(msg.errorResponse('ERROR', '42601', 'syntax error'), m('Z', 'I'));
    expect(err?.toString()).toContain('refused by an approver');
    expect(z).toBeUndefined();
    expect(on.t.outstanding).toBe(0);
    expect(on.lines[0]).toMatchObject({ verdict: { decision: 'denied', hold: 'hold_0000000000000002' }, error: { sqlstate: '42501' } });
  });

  it('the gate holds everything after a held item, keeps order, and pauses the client until decided', async () => {
    const written: string[] = [];
    let paused = false;
    let release!: (b: Buffer) => void;
    const gate = new ReviewGate({
      writeUpstream: (p) => written.push(p.map(String).join('')),
      pauseClient: () => (paused = true),
      resumeClient: () => (paused = false),
      closed: () => false,
      decide: (_: HeldItem) => new Promise<Buffer>((r) => (release = r)),
    });
    const fake = { kind: 'review', sql: 'x', verdict: review(), approve() {}, refuse: () => Buffer.from('REFUSED') } as ReviewRequest;
    gate.push([Buffer.from('a'), { review: fake, raw: Buffer.from('HELD') }, Buffer.from('b')]);
    expect(written).toEqual(['a']);
    expect(paused && gate.active).toBe(true);
    gate.push([Buffer.from('c')]);
    expect(written).toEqual(['a']);
    release(Buffer.from('HELD'));
    await new Promise((r) => setImmediate(r));
    expect(written).toEqual(['a', 'HELDbc']);
    expect(paused || gate.active).toBe(false);
  });
});
