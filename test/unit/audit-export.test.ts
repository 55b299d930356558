import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatRfc5424, frameOctetCounting, parseOctetCounted, severityOf } from '../../recorder/audit-export/syslog-format.js';
import { Spool } from '../../recorder/audit-export/spool.js';
import type { AuditEntry } from '../../recorder/audit.types.js';

const entry = (seq: number, extra: Record<string, unknown> = {}): AuditEntry => ({
  type: 'session.start', actor: 'dana', seq, time: '2026-12-02T00:10:00.123Z', prev: 'p', hash: `h${seq}`, ...extra,
});

// RFC 5424 §6: HEADER SP STRUCTURED-DATA [SP MSG]
const RFC5424 = /^<(\d{1,3})>1 (\S+) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) (\[pam@32473 seq="(\d+)" hash="((?:[^"\\\]]|\\["\\\]])*)"\]) \uFEFF(.*)$/s;

describe('RFC 5424 syslog format', () => {
  it('writes header, structured data and the entry as JSON after a BOM', () => {
    const m = RFC5424.exec(formatRfc5424(entry(7, { why: 'café "quoted"' }), { hostname: 'node a', appName: 'pam-proxy', procId: '42' }));
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBe(13 * 8 + 5);
    expect(m![2]).toBe('2026-12-02T00:10:00.123Z');
    expect(m![3]).toBe('node_a');
    expect(m![6]).toBe('session.start');
    expect(m![8]).toBe('7');
    expect(JSON.parse(m![10]!)).toMatchObject({ seq: 7, why: 'café "quoted"' });
    expect(severityOf('session.refused')).toBe(4);
    expect(severityOf('policy.deny')).toBe(4);
    expect(severityOf('audit_export.overflow')).toBe(4);
    expect(severityOf('ui.signin')).toBe(6);
  });

  it('keeps header fields printable and SD values escaped, whatever the entry holds', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), fc.string({ maxLength: 60 }), (type, hash) => {
      const msg = formatRfc5424({ ...entry(1), type, hash }, { hostname: 'h', appName: 'pam-proxy', procId: '1' });
      const m = RFC5424.exec(msg);
      expect(m).not.toBeNull();
      expect(m![9]!.replace(/\\(["\\\]])/g, '$1')).toBe(hash);
      expect(JSON.parse(m![10]!).type).toBe(type);
    }));
  });

  it('frames by octet count, and the frames split anywhere parse back', () => {
    fc.assert(fc.property(fc.array(fc.string({ minLength: 1, maxLength: 80 }), { minLength: 1, maxLength: 8 }), fc.nat(), (msgs, cutAt) => {
      const stream = Buffer.concat(msgs.map(frameOctetCounting));
      const cut = cutAt % (stream.length + 1);
      const a = parseOctetCounted(stream.subarray(0, cut));
      const b = parseOctetCounted(Buffer.concat([a.rest, stream.subarray(cut)]));
      expect([...a.messages, ...b.messages]).toEqual(msgs);
      expect(b.rest.length).toBe(0);
    }));
    expect(() => parseOctetCounted(Buffer.from('x12 hello world and more'))).toThrow(/length/);
  });
});

describe('spool', () => {
  const dir = () => mkdtempSync(join(tmpdir(), 'pam-spool-'));

  it('keeps entries in order across a reopen and delivers from the cursor', () => {
    const d = dir();
    try {
      let s = Spool.open(d, 'siem', 1 << 20);
      expect(s.lastSeq).toBe(-1);
      for (let i = 1; i <= 5; i++) expect(s.append(i, JSON.stringify(entry(i)))).toBe(true);
      const first = s.peek(2);
      expect(first.lines.map((l) => JSON.parse(l).seq)).toEqual([1, 2]);
      s.commit(first.end, first.lines.length);
      s.close();
      // A restart: what was not committed is still there, in order.
      s = Spool.open(d, 'siem', 1 << 20);
      expect(s.lastSeq).toBe(5);
      expect(s.pendingEvents).toBe(3);
      const rest = s.peek(10);
      expect(rest.lines.map((l) => JSON.parse(l).seq)).toEqual([3, 4, 5]);
      s.commit(rest.end, rest.lines.length);
      expect(s.pendingBytes).toBe(0);
      expect(readFileSync(join(d, 'siem.spool')).length).toBe(0);
      s.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('refuses what would pass its bound, counts it, and compacts the delivered head', () => {
    const d = dir();
    try {
      const line = (i: number) => JSON.stringify(entry(i, { pad: 'x'.repeat(900) }));
      const s = Spool.open(d, 'siem', 4096);
      const taken = [1, 2, 3, 4, 5, 6].map((i) => s.append(i, line(i)));
      expect(taken.filter(Boolean).length).toBe(4);
      expect(taken.slice(4)).toEqual([false, false]);
      expect(s.overflow).toEqual({ dropped: 2, firstDroppedSeq: 5 });
      expect(s.lastSeq).toBe(6);
      const head = s.peek(3);
      s.commit(head.end, 3);
      // More than half the bound was delivered: the file now holds only the undelivered line.
      expect(readFileSync(join(d, 'siem.spool'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).seq)).toEqual([4]);
      expect(s.append(7, line(7))).toBe(true);
      expect(s.peek(10).lines.map((l) => JSON.parse(l).seq)).toEqual([4, 7]);
      expect(s.clearOverflow()).toEqual({ dropped: 2, firstDroppedSeq: 5 });
      s.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
