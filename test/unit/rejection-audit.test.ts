import { describe, expect, it } from 'vitest';
import { RejectionAudit } from '../../access/rejection-audit.js';
import type { AuditEvent, AuditLog } from '../../recorder/audit.types.js';

/** An in-memory AuditLog: this unit is about counting, the file log has its own tests. */
function memoryLog(): AuditLog & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return {
    events,
    append: async (e) => {
      events.push(e);
      return { ...e, seq: events.length, time: '', prev: '', hash: '' };
    },
    read: async () => [],
  };
}

const bad = (client: string, reason = 'bad signature') => ({ type: 'token.rejected' as const, via: 'http', reason, client });

describe('RejectionAudit', () => {
  it('writes the first refusals of a window per source, counts the rest, and summarises them', async () => {
    const log = memoryLog();
    let clock = 1_000_000;
    const r = new RejectionAudit(log, { burst: 3, windowMs: 60_000, now: () => clock });
    for (let i = 0; i < 40; i++) await r.rejected(bad('10.0.0.1', i % 2 ? 'expired' : 'bad signature'));
    await r.rejected(bad('10.0.0.2'));
    expect(log.events.filter((e) => e.type === 'token.rejected').map((e) => e.client)).toEqual(['10.0.0.1', '10.0.0.1', '10.0.0.1', '10.0.0.2']);
    clock += 60_000;
    await r.rejected(bad('10.0.0.1'));
    const summary = log.events.find((e) => e.type === 'token.rejected.suppressed')!;
    expect(summary).toMatchObject({ client: '10.0.0.1', via: 'http', count: 37, reasons: { 'bad signature': 18, expired: 19 } });
    expect(log.events.at(-1)).toMatchObject({ type: 'token.rejected', client: '10.0.0.1' });
    await r.close();
    expect(log.events.filter((e) => e.type === 'token.rejected.suppressed')).toHaveLength(1);
  });

  it('loses no count at close, and keeps memory bounded with many sources', async () => {
    const log = memoryLog();
    const r = new RejectionAudit(log, { burst: 1, maxSources: 10 });
    for (let i = 0; i < 100; i++) await r.rejected(bad(`10.1.0.${i}`));
    await r.close();
    const written = log.events.filter((e) => e.type === 'token.rejected').length;
    const counted = log.events.filter((e) => e.type === 'token.rejected.suppressed').reduce((n, e) => n + (e.count as number), 0);
    expect(written + counted).toBe(100);
    expect(log.events.find((e) => e.type === 'token.rejected.suppressed')?.client).toBe('(many sources)');
  });
});
