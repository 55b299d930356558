import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileAuditLog, verifyAuditChain } from '../../recorder/audit-log.js';
import { StoreVault, loadMasterKey } from '../../access/vault.js';
import { openEmbeddedStore } from '../../access/store-embedded.js';
import type { AuditEvent } from '../../recorder/audit.types.js';

/** These tests exercise the chain and the scrub, not the event schema: events as any caller might pass them. */
const raw = (e: Record<string, unknown> & { type: string }) => e as unknown as AuditEvent;

let dir: string;
afterEach(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

async function allFiles(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else out.push(p);
  }
  return out;
}

describe('audit log', () => {
  it('chains entries and detects an edited, removed or reordered line', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-audit-'));
    const path = join(dir, 'audit.log');
    const log = await FileAuditLog.open(path);
    for (let i = 0; i < 5; i++) await log.append(raw({ type: 'request', actor: `u${i}`, request: `req_${i}` }));
    await log.close();
    expect(await verifyAuditChain(path)).toEqual({ ok: true, entries: 5 });

    // Reopening continues the chain.
    const again = await FileAuditLog.open(path);
    await again.append(raw({ type: 'revoke', actor: 'sec' }));
    await again.close();
    expect((await verifyAuditChain(path)).ok).toBe(true);

    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    const edited = [...lines];
    edited[2] = edited[2]!.replace('"u2"', '"mallory"');
    await writeFile(path, edited.join('\n') + '\n');
    expect(await verifyAuditChain(path)).toMatchObject({ ok: false, brokenAt: 3, why: /hash/ });

    await writeFile(path, [...lines.slice(0, 2), ...lines.slice(3)].join('\n') + '\n');
    expect(await verifyAuditChain(path)).toMatchObject({ ok: false, brokenAt: 3 });

    await writeFile(path, [lines[1], lines[0], ...lines.slice(2)].join('\n') + '\n');
    expect(await verifyAuditChain(path)).toMatchObject({ ok: false, brokenAt: 1 });
  });

  it('never writes token or password fields', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-audit-'));
    const log = await FileAuditLog.open(join(dir, 'audit.log'));
    await log.append(raw({ type: 'token.rejected', reason: 'expired', token: 'eyJhbGciOi.SECRET.TOKEN', password: 'hunter2' }));
    await log.close();
    const text = await readFile(join(dir, 'audit.log'), 'utf8');
    expect(text).toContain('expired');
    expect(text).not.toContain('SECRET');
    expect(text).not.toContain('hunter2');
  });
});

describe('audit log durability', () => {
  it('fdatasyncs what it wrote within a second, once for many appends, and at close', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-audit-'));
    const log = await FileAuditLog.open(join(dir, 'audit.log'));
    expect(log.datasyncs).toBe(0);
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append(raw({ type: 'request', actor: `u${i}` }))));
    await vi.waitFor(() => expect(log.datasyncs).toBe(1), { timeout: 5000, interval: 50 });
    await log.append(raw({ type: 'revoke', actor: 'sec' }));
    await log.close();
    expect(log.datasyncs).toBeGreaterThanOrEqual(2);
    expect(await verifyAuditChain(join(dir, 'audit.log'))).toEqual({ ok: true, entries: 21 });
  });

  it('refuses appends once an fdatasync failed: it can no longer say its entries are durable', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-audit-'));
    const log = await FileAuditLog.open(join(dir, 'audit.log'));
    // The fault: the disk refuses to sync (EIO), injected into the log's own file handle.
    const fh = (log as unknown as { fh: { datasync: () => Promise<void> } }).fh;
    const real = fh.datasync.bind(fh);
    let failed = 0;
    fh.datasync = () => { failed++; return Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })); };
    await log.append(raw({ type: 'request', actor: 'u1' }));
    await vi.waitFor(() => expect(failed).toBe(1), { timeout: 5000, interval: 50 });
    await expect(log.append(raw({ type: 'request', actor: 'u2' }))).rejects.toThrow(/could not be synced to disk: EIO/);
    fh.datasync = real;
    await log.close();
    expect(await verifyAuditChain(join(dir, 'audit.log'))).toEqual({ ok: true, entries: 1 });
  });
});

describe('vault', () => {
  it('keeps no plaintext on disk and round-trips in memory', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-vault-'));
    const key = await loadMasterKey(dir, {});
    expect((await stat(join(dir, 'master.key'))).mode & 0o777).toBe(0o600);
    const store = await openEmbeddedStore(join(dir, 'state'));
    const vault = new StoreVault(store, key);
    const secret = 'correct-horse-battery-staple-PLAINTEXT';
    await vault.set('db-pass', Buffer.from(secret));
    expect((await vault.reveal('db-pass')).toString()).toBe(secret);
    expect(await vault.list()).toEqual(['db-pass']);
    await store.close();
    for (const f of await allFiles(join(dir, 'state'))) {
      const bytes = await readFile(f);
      expect(bytes.includes(Buffer.from(secret))).toBe(false);
      expect(bytes.includes(Buffer.from(Buffer.from(secret).toString('base64')))).toBe(false);
    }
    // Same store, other master key: refused, not garbage.
    const store2 = await openEmbeddedStore(join(dir, 'state'));
    const other = new StoreVault(store2, await loadMasterKey(dir, { PAM_MASTER_KEY: 'ab'.repeat(32) }));
    await expect(other.reveal('db-pass')).rejects.toThrow(/cannot be decrypted/);
    await expect(other.reveal('missing')).rejects.toThrow(/not in the vault/);
    expect(await new StoreVault(store2, key).remove('db-pass')).toBe(true);
    expect(await new StoreVault(store2, key).list()).toEqual([]);
    await store2.close();
  });

  it('rejects a master key of the wrong size', async () => {
    await expect(loadMasterKey('/nonexistent', { PAM_MASTER_KEY: 'abcd' })).rejects.toThrow(/32 bytes/);
  });
});

describe('audit log with two writers', () => {
  it('continues the chain when another process appended (pam secret while the proxy runs)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-audit-'));
    const path = join(dir, 'audit.log');
    const proxy = await FileAuditLog.open(path);
    await proxy.append(raw({ type: 'config.loaded' }));
    const cli = await FileAuditLog.open(path);
    await cli.append(raw({ type: 'secret.set', name: 'x' }));
    await cli.close();
    await proxy.append(raw({ type: 'session.start' }));
    await proxy.close();
    expect(await verifyAuditChain(path)).toEqual({ ok: true, entries: 3 });
  });
});

describe('vault with the embedded store', () => {
  it('keeps one 0600 sealed file per secret, without plaintext, readable by a second process', async () => {
    const { openVault } = await import('../../access/vault.js');
    dir = await mkdtemp(join(tmpdir(), 'pam-vault-'));
    const cliVault = await openVault('embedded', undefined as never, dir);
    await cliVault.set('web1-root', Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nPLAINKEYMATERIAL\n'));
    const file = join(dir, 'vault', 'web1-root.sealed');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).includes('PLAINKEYMATERIAL')).toBe(false);
    const proxyVault = await openVault('embedded', undefined as never, dir);
    expect((await proxyVault.reveal('web1-root')).toString()).toContain('PLAINKEYMATERIAL');
    expect(await proxyVault.list()).toEqual(['web1-root']);
    await expect(cliVault.set('../escape', Buffer.from('x'))).rejects.toThrow(/letters, digits/);
  });
});
