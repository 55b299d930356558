import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditBy, auditEvent, byActor, type AuditEvent } from '../../recorder/audit-events.js';
import { FileAuditLog, verifyAuditChain } from '../../recorder/audit-log.js';

const alice = { user: 'alice@example.com', subject: 'sub-0001', groups: [] as string[] };

let dir: string | undefined;
afterEach(async () => { if (dir) await rm(dir, { recursive: true, force: true }); dir = undefined; });

describe('audit event builders', () => {
  it('carry the display name and the IAM subject of the actor', () => {
    expect(byActor(alice)).toEqual({ actor: 'alice@example.com', sub: 'sub-0001' });
    expect(auditBy(alice, 'revoke', { grant: 'gr_1', user: 'bob', target: 'web1', login: 'root', reason: 'done' })).toEqual({
      type: 'revoke', actor: 'alice@example.com', sub: 'sub-0001', grant: 'gr_1', user: 'bob', target: 'web1', login: 'root', reason: 'done',
    });
  });

  it('build the proxy\'s own events without an actor', () => {
    expect(auditEvent('policy.refused', { why: 'roles.yaml: bad' })).toEqual({ type: 'policy.refused', why: 'roles.yaml: bad' });
  });

  it('reject a drifted field name at compile time', () => {
    // The union is the schema: `npm run typecheck` fails if any of these compiles.
    // @ts-expect-error a refusal says `why`, never `reason`
    auditEvent('ui.signin-refused', { via: 'dev', reason: 'wrong secret' });
    // @ts-expect-error policy.refused says `why`, never `error`
    auditEvent('policy.refused', { error: 'bad file' });
    // @ts-expect-error the actor comes from the identity, not the fields
    auditBy(alice, 'approve', { request: 'req_1', actor: 'mallory' });
    // @ts-expect-error an unknown event type
    const e: AuditEvent = { type: 'session.hijack' };
    expect(e.type).toBe('session.hijack');
  });
});

describe('the log keeps entries written before the typed events', () => {
  /** Lines exactly as the previous writer produced them (hash = sha256(prev + "\n" + entry without hash)). */
  function oldLines(): string[] {
    let prev = '0'.repeat(64);
    const bodies = [
      { type: 'token.rejected', via: 'http', reason: 'expired', client: '127.0.0.1' },
      { type: 'policy.refused', error: 'roles.yaml: roles[0].name: is required' },
      { type: 'session.refused', protocol: 'postgres', target: 'appdb', login: 'app', why: 'token rejected: expired' },
      { type: 'request', actor: 'dana', request: 'req_0123456789abcdef', target: 'web1', login: 'root', duration: '1h', reason: 'INC-1' },
    ];
    return bodies.map((b, i) => {
      const body = { ...b, seq: i + 1, time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), prev };
      const hash = createHash('sha256').update(prev).update('\n').update(JSON.stringify(body)).digest('hex');
      prev = hash;
      return JSON.stringify({ ...body, hash });
    });
  }

  it('verifies, reads back unchanged, and continues the chain with typed events', async () => {
    dir = await mkdtemp(join(tmpdir(), `pam-audit-old-${process.pid}-`));
    const path = join(dir, 'audit.log');
    const lines = oldLines();
    await writeFile(path, lines.join('\n') + '\n');
    expect(await verifyAuditChain(path)).toEqual({ ok: true, entries: 4 });

    const log = await FileAuditLog.open(path);
    await log.append(auditBy(alice, 'approve', { request: 'req_0123456789abcdef', reason: 'ok' }));
    const entries = await log.read();
    await log.close();

    // Old entries come back field for field as written, old names included.
    expect(entries.slice(0, 4).map((e) => JSON.stringify(e))).toEqual(lines);
    expect(entries[0]).toMatchObject({ type: 'token.rejected', reason: 'expired' });
    expect(entries[1]).toMatchObject({ type: 'policy.refused', error: expect.stringContaining('roles.yaml') });
    expect(entries[4]).toMatchObject({ seq: 5, type: 'approve', actor: 'alice@example.com', sub: 'sub-0001', prev: entries[3]!.hash });
    expect(await verifyAuditChain(path)).toEqual({ ok: true, entries: 5 });
    expect((await readFile(path, 'utf8')).split('\n').slice(0, 4)).toEqual(lines);
  });
});
