/**
 * Per-session costs of a session open (issue 14) that were cut without changing what is
 * checked or kept: verified tokens remembered for a minute at most, the credential-use record
 * written at most once a minute, audit appends that arrive together written together, grants
 * looked up by subject.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDevIssuer } from '../../access/dev-issuer.js';
import { cachingVerifier, VERIFIED_TOKEN_TTL_MS } from '../../access/verified-tokens.js';
import { TokenRejected, type IdentityVerifier } from '../../access/identity.types.js';
import { CredentialUseLog, USE_REFRESH_MS } from '../../access/credential-use.js';
import { openEmbeddedStore } from '../../access/store-embedded.js';
import { FileAuditLog, verifyAuditChain } from '../../recorder/audit-log.js';
import type { Authorized } from '../../access/access.types.js';
import type { AuditEvent } from '../../recorder/audit.types.js';
import { AccessService } from '../../access/access-service.js';
import { GrantIndex } from '../../access/grant-index.js';
import { fileSecretStorage, loadMasterKey, StoreVault } from '../../access/vault.js';
import type { Grant } from '../../access/access.types.js';
import type { Store } from '../../access/store.types.js';
import type { Target } from '../../config/config.types.js';

let dir: string;
afterEach(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

function counting(inner: IdentityVerifier): IdentityVerifier & { calls: number } {
  const v = { calls: 0, verify: (t: string) => { v.calls++; return inner.verify(t); } };
  return v;
}

describe('verified tokens', () => {
  it('verifies a token once, then answers from memory until the bound, never past exp', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-vt-'));
    const dev = await loadDevIssuer(dir, 'aud');
    const token = await dev.issue('alice', ['dba'], { ttlSec: 600 });
    const inner = counting(dev.verifier);
    let clock = Date.now();
    const cached = cachingVerifier(inner, { now: () => clock });

    const first = await cached.verify(token);
    const second = await cached.verify(token);
    expect(inner.calls).toBe(1);
    expect(second).toEqual(first);
    second.groups.push('mutated');
    expect((await cached.verify(token)).groups).toEqual(['dba']); // each caller gets its own copy

    clock += VERIFIED_TOKEN_TTL_MS + 1; // past the bound: verified again
    await cached.verify(token);
    expect(inner.calls).toBe(2);

    clock = first.expiresAt; // at exp the memory is not used, whatever the bound
    await cached.verify(token).catch(() => undefined);
    expect(inner.calls).toBe(3);
  });

  it('never remembers a refusal', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-vt-'));
    const dev = await loadDevIssuer(dir, 'aud');
    const other = await loadDevIssuer(await mkdtemp(join(dir, 'other-')), 'aud');
    const forged = await other.issue('mallory', ['dba']); // signed by a key this verifier does not trust
    const inner = counting(dev.verifier);
    const cached = cachingVerifier(inner);
    await expect(cached.verify(forged)).rejects.toBeInstanceOf(TokenRejected);
    await expect(cached.verify(forged)).rejects.toBeInstanceOf(TokenRejected);
    expect(inner.calls).toBe(2);
  });
});

describe('credential use', () => {
  it('writes a use at once, again only after the refresh interval or for another secret', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-cu-'));
    const store = await openEmbeddedStore(join(dir, 'state'));
    let clock = 1_000_000;
    const uses = new CredentialUseLog(store, () => clock);
    const auth = (secret: string) => ({
      identity: { subject: 's-alice', user: 'alice', groups: [], issuer: 'x', expiresAt: Number.MAX_SAFE_INTEGER },
      target: { name: 'db', logins: { app: { secret } } }, login: 'app', grant: { id: 'g' },
    }) as unknown as Authorized;
    const at = async () => (await uses.since(0, () => true)).map((u) => [u.secret, u.at]);

    await uses.record(auth('pg'));
    expect(await at()).toEqual([['pg', 1_000_000]]);
    clock += USE_REFRESH_MS - 1;
    await uses.record(auth('pg'));
    expect(await at()).toEqual([['pg', 1_000_000]]); // not written again within the interval
    await uses.record(auth('pg2')); // the target now names another secret: written at once
    expect(await at()).toEqual([['pg2', clock]]);
    clock += USE_REFRESH_MS;
    await uses.record(auth('pg2'));
    expect(await at()).toEqual([['pg2', clock]]);
    await store.close();
  });
});

describe('audit group commit', () => {
  it('appends that arrive together keep their order, their chain and each its own entry', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-agc-'));
    const path = join(dir, 'audit.log');
    const lines: string[] = [];
    const log = await FileAuditLog.open(path, { onLine: (l) => lines.push(l) });
    const events = Array.from({ length: 200 }, (_, i) => ({ type: 'session.start', user: `u${i}` }) as unknown as AuditEvent);
    const entries = await Promise.all(events.map((e) => log.append(e)));
    expect(entries.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(entries.map((e) => (e as unknown as { user: string }).user)).toEqual(events.map((_, i) => `u${i}`));
    await log.close();
    const file = (await readFile(path, 'utf8')).trim().split('\n');
    expect(file).toEqual(lines);
    expect(file.map((l) => JSON.parse(l).hash)).toEqual(entries.map((e) => e.hash));
    expect(await verifyAuditChain(path)).toEqual({ ok: true, entries: 200 });
  });

  it('an append is in the file before the event loop next polls for I/O (no thread-pool round trip)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-agc-'));
    const path = join(dir, 'audit.log');
    const log = await FileAuditLog.open(path);
    const appended = log.append({ type: 'session.start', user: 'alice' } as unknown as AuditEvent);
    // setImmediate runs right after the next poll phase: a write through the thread pool
    // (fstat, then write) would still be on its way.
    await new Promise((r) => setImmediate(r));
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ type: 'session.start', user: 'alice', seq: 1 });
    expect((await appended).hash).toBe(JSON.parse(lines[0]!).hash);
    await log.close();
  });

  it('a failed write fails every append of its batch and the next append still chains', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-agc-'));
    const path = join(dir, 'audit.log');
    const log = await FileAuditLog.open(path);
    await log.append({ type: 'session.start' } as unknown as AuditEvent);
    // Fault: the handle is closed under the log, so the next write fails.
    const fh = (log as unknown as { fh: { close(): Promise<void> } }).fh;
    await fh.close();
    const failed = await Promise.allSettled([1, 2, 3].map(() => log.append({ type: 'session.end' } as unknown as AuditEvent)));
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(await verifyAuditChain(path)).toEqual({ ok: true, entries: 1 });
  });
});

describe('grant look-up by subject', () => {
  it('finds the subject\'s grant without listing every grant, falls back to the scan for grants it does not know, and never authorizes a revoked one', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-gi-'));
    const store = await openEmbeddedStore(join(dir, 'state'));
    const audit = await FileAuditLog.open(join(dir, 'audit.log'));
    const target = { name: 'db', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'd', tls: 'disable', logins: { app: { secret: 's' } } } as unknown as Target;
    const access = new AccessService({ store, audit, roles: () => [], targets: () => [target] });
    const lists: string[] = [];
    const list = store.list.bind(store);
    store.list = (<T>(ns: string) => { lists.push(ns); return list<T>(ns); }) as Store['list'];
    const now = Date.now();
    const grant = (id: string, subject: string) => ({ id, requestId: 'req_x', subject, user: subject, target: 'db', login: 'app', approvedBy: 'boss', startsAt: now - 1000, expiresAt: now + 3600_000 }) as Grant;
    const who = (subject: string) => ({ subject, user: subject, groups: [], issuer: 'x', expiresAt: now + 3600_000 });
    const index = new GrantIndex(store);
    for (let i = 0; i < 50; i++) {
      const g = grant(`gr_${String(i).padStart(16, '0')}`, `user${i}`);
      await store.set('grants', g.id, g);
      await index.add(g);
    }

    expect((await access.authorize(who('user7'), 'db', 'app', 'postgres')).grant.id).toBe('gr_0000000000000007');
    expect(lists).toEqual([]); // found through the index, no full scan

    const legacy = grant('gr_ffffffffffffffff', 'olduser'); // stored without an index entry
    await store.set('grants', legacy.id, legacy);
    expect((await access.authorize(who('olduser'), 'db', 'app', 'postgres')).grant.id).toBe(legacy.id);
    expect(lists).toEqual(['grants']); // nothing usable in the index: the scan found it

    await store.delete('grants', 'gr_0000000000000009'); // revoked: its id stays in the index
    await expect(access.authorize(who('user9'), 'db', 'app', 'postgres')).rejects.toMatchObject({ code: 'no-grant' });
    await audit.close();
    await store.close();
  });
});

describe('vault files read once per change', () => {
  it('a secret replaced by another process (pam secret set) is seen at the next reveal', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-vf-'));
    const key = await loadMasterKey(dir);
    const proxy = new StoreVault(fileSecretStorage(join(dir, 'vault')), key);
    const cli = new StoreVault(fileSecretStorage(join(dir, 'vault')), key); // another process's view
    await cli.set('db', Buffer.from('one'));
    expect((await proxy.reveal('db')).toString()).toBe('one');
    expect((await proxy.reveal('db')).toString()).toBe('one'); // from the remembered file
    await cli.set('db', Buffer.from('two'));
    expect((await proxy.reveal('db')).toString()).toBe('two');
    await cli.remove('db');
    await expect(proxy.reveal('db')).rejects.toThrow(/not in the vault/);
  });
});
