import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileAuditLog, checkAuditChain } from '../../recorder/audit-log.js';
import { checkpointProblem, signCheckpoint } from '../../recorder/evidence/checkpoint.js';
import { loadSigningKey, parsePublicKeys, type Keyring } from '../../recorder/evidence/signing-key.js';
import { EvidenceMismatch, TransparencyLog } from '../../recorder/evidence/transparency-log.js';
import { verifyLog } from '../../recorder/evidence/verify-log.js';
import { FileWitness } from '../../recorder/evidence/witness.js';
import { forge, type Tamper } from '../helpers/audit-forge.js';
import type { AuditEvent } from '../../recorder/audit.types.js';

/** These tests exercise the log and its evidence, not the event schema: events as any caller might pass them. */
const raw = (e: Record<string, unknown> & { type: string }) => e as unknown as AuditEvent;

const dir = await mkdtemp(join(tmpdir(), `pam-evidence-${process.pid}-`));
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;
const sub = (name: string) => join(dir, `${name}-${n++}`);

describe('signing key', () => {
  it('is created as Ed25519 PKCS#8 with mode 0600, and the same key is read back', async () => {
    const file = join(sub('key'), 'evidence.key');
    const a = await loadSigningKey(file, { create: true });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const b = await loadSigningKey(file);
    expect(b.keyId).toBe(a.keyId);
    expect(a.publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  it('is refused when group or others may read it, when missing without create, and when not Ed25519', async () => {
    const file = join(sub('key'), 'evidence.key');
    await loadSigningKey(file, { create: true });
    await chmod(file, 0o644);
    await expect(loadSigningKey(file)).rejects.toThrow(/mode 0644, wider than 0600/);
    await expect(loadSigningKey(join(dir, 'nope.key'))).rejects.toThrow(/does not exist/);
    const rsa = join(dir, 'rsa.key');
    await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await expect(loadSigningKey(rsa)).rejects.toThrow(/must be Ed25519/);
  });

  it('a file of several public keys is one keyring', async () => {
    const a = await loadSigningKey(join(sub('key'), 'a.key'), { create: true });
    const b = await loadSigningKey(join(sub('key'), 'b.key'), { create: true });
    const ring = parsePublicKeys(a.publicPem + b.publicPem);
    expect([...ring.keys()].sort()).toEqual([a.keyId, b.keyId].sort());
    expect(() => parsePublicKeys('nothing here')).toThrow(/no PEM public key/);
  });
});

describe('checkpoints', () => {
  it('verify under their key, fail on any changed field or an unknown key, and old keys keep verifying after rotation', async () => {
    const old = await loadSigningKey(join(sub('key'), 'old.key'), { create: true });
    const cur = await loadSigningKey(join(sub('key'), 'new.key'), { create: true });
    const cp = signCheckpoint({ origin: 'node-a', size: 10, root: 'ab'.repeat(32), time: '2026-12-01T00:00:00.000Z' }, old);
    const ring: Keyring = new Map([[cur.keyId, cur.publicKey], [old.keyId, old.publicKey]]);
    expect(checkpointProblem(cp, ring)).toBeUndefined();
    expect(checkpointProblem({ ...cp, size: 9 }, ring)).toMatch(/signature does not verify/);
    expect(checkpointProblem({ ...cp, root: 'ac'.repeat(32) }, ring)).toMatch(/signature/);
    expect(checkpointProblem({ ...cp, origin: 'node-b' }, ring)).toMatch(/signature/);
    expect(checkpointProblem(cp, new Map([[cur.keyId, cur.publicKey]]))).toMatch(/not among the trusted public keys/);
  });

  it('a file witness refuses a checkpoint that goes back or forks', async () => {
    const key = await loadSigningKey(join(sub('key'), 'k.key'), { create: true });
    const w = new FileWitness(sub('witness'));
    const at = (size: number, root: string) => signCheckpoint({ origin: 'o', size, root, time: new Date().toISOString() }, key);
    await w.publish(at(5, '11'.repeat(32)));
    await expect(w.publish(at(4, '22'.repeat(32)))).rejects.toThrow(/went back/);
    await expect(w.publish(at(5, '33'.repeat(32)))).rejects.toThrow(/forked/);
    await w.publish(at(6, '44'.repeat(32)));
    // A fresh instance on the same directory remembers.
    await expect(new FileWitness(w.dir).publish(at(5, '11'.repeat(32)))).rejects.toThrow(/went back/);
    expect((await w.read()).checkpoints.map((c) => c.size)).toEqual([5, 6]);
  });
});

/** A real audit log file with its transparency log, as the control plane builds them. */
async function signedLog(entries: number) {
  const base = sub('log');
  const key = await loadSigningKey(join(base, 'key', 'evidence.key'), { create: true });
  const keyring: Keyring = new Map([[key.keyId, key.publicKey]]);
  const local = new FileWitness(join(base, 'data', 'evidence'), 'data_dir/evidence');
  const witness = new FileWitness(join(base, 'witness'));
  const tlog = new TransparencyLog({ key, keyring, local, witnesses: [witness], origin: 'test', intervalMs: 60_000 });
  const path = join(base, 'data', 'audit.log');
  const audit = await FileAuditLog.open(path, { onLine: (l) => tlog.add(l) });
  for (let i = 0; i < entries; i++) {
    await audit.append(raw({ type: 'test.event', actor: `user${i}`, i }));
    // Several checkpoints along the way, as a running proxy signs every few seconds.
    if (i % 7 === 6) await tlog.checkpoint();
  }
  await audit.close();
  await tlog.close();
  const lines = (await readFile(path, 'utf8')).split('\n').filter(Boolean);
  const sources = async () => [{ name: witness.name, ...(await witness.read()) }, { name: local.name, ...(await local.read()) }];
  return { path, lines, key, keyring, local, witness, tlog, sources };
}

describe('transparency log over the audit log', () => {
  it('an untouched log verifies against its witnessed checkpoints', async () => {
    const s = await signedLog(30);
    const v = verifyLog(s.lines, await s.sources(), s.keyring, 'test');
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.signed?.size).toBe(30);
    expect(v.signed?.by).toContain(s.witness.name);
    expect(v.unsigned).toBe(0);
  });

  it.each<[Tamper, number, RegExp]>([
    ['edit', 10, /entries 8\.\.14 do not match the checkpoint of 14 entries/],
    ['remove', 10, /entries 8\.\.14 do not match/],
    ['reorder', 3, /entries 1\.\.7 do not match/],
    ['truncate', 25, /the log has 25 entries but a checkpoint signed at .* covers 30: entries 26\.\.30 are gone/],
  ])('%s with the chain recomputed: the chain check passes, verification fails and says where', async (how, at, why) => {
    const s = await signedLog(30);
    const forged = forge(s.lines, how, at);
    expect(checkAuditChain(forged).ok).toBe(true); // the forger's work is good enough for the old check
    const v = verifyLog(forged, await s.sources(), s.keyring, 'test');
    expect(v.ok).toBe(false);
    expect(v.problems.map((p) => p.what).join('\n')).toMatch(why);
  });

  it('a forged checkpoint in data_dir is reported, and deleting every local checkpoint does not help the forger', async () => {
    const s = await signedLog(14);
    const other = await loadSigningKey(join(sub('key'), 'attacker.key'), { create: true });
    const forged = forge(s.lines, 'edit', 2);
    const fake = signCheckpoint({ origin: 'test', size: 14, root: 'ff'.repeat(32), time: new Date().toISOString() }, other);
    const v = verifyLog(forged, [{ name: s.witness.name, ...(await s.witness.read()) }, { name: 'data_dir/evidence', checkpoints: [fake], unreadable: [] }], s.keyring, 'test');
    expect(v.ok).toBe(false);
    expect(v.problems.map((p) => p.what).join('\n')).toMatch(/not genuine: signed by key .* not among the trusted/);
    expect(v.problems.map((p) => p.what).join('\n')).toMatch(/entries 1\.\.7 do not match/);
  });

  it('a proxy refuses to extend a log cut below its witnessed checkpoint, or rewritten', async () => {
    const s = await signedLog(20);
    for (const lines of [forge(s.lines, 'truncate', 15), forge(s.lines, 'edit', 3)]) {
      await writeFile(s.path, lines.join('\n') + '\n');
      const tlog = new TransparencyLog({ key: s.key, keyring: s.keyring, local: s.local, witnesses: [s.witness], origin: 'test', intervalMs: 60_000 });
      const audit = await FileAuditLog.open(s.path, { onLine: (l) => tlog.add(l) });
      await expect(tlog.assertExtendsWitnessed()).rejects.toThrow(EvidenceMismatch);
      await audit.close();
    }
    // The untouched log is accepted and extended.
    await writeFile(s.path, s.lines.join('\n') + '\n');
    const tlog = new TransparencyLog({ key: s.key, keyring: s.keyring, local: s.local, witnesses: [s.witness], origin: 'test', intervalMs: 60_000 });
    const audit = await FileAuditLog.open(s.path, { onLine: (l) => tlog.add(l) });
    await tlog.assertExtendsWitnessed();
    await audit.append(raw({ type: 'after.restart' }));
    await audit.close();
    await tlog.close();
    const lines = (await readFile(s.path, 'utf8')).split('\n').filter(Boolean);
    expect(verifyLog(lines, await s.sources(), s.keyring, 'test').signed?.size).toBe(21);
  });

  it('lines another process appends (pam secret) join the tree in order', async () => {
    const s = await signedLog(3);
    const tlog = new TransparencyLog({ key: s.key, keyring: s.keyring, local: s.local, witnesses: [s.witness], origin: 'test', intervalMs: 60_000 });
    const mine = await FileAuditLog.open(s.path, { onLine: (l) => tlog.add(l) });
    const other = await FileAuditLog.open(s.path);
    await other.append(raw({ type: 'secret.set', name: 'x' }));
    await other.close();
    await mine.append(raw({ type: 'mine' }));
    await mine.close();
    await tlog.close();
    const lines = (await readFile(s.path, 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(5);
    const v = verifyLog(lines, await s.sources(), s.keyring, 'test');
    expect(v.ok).toBe(true);
    expect(v.signed?.size).toBe(5);
  });
});

describe('recordings a crash left live', () => {
  it('are sealed as found when the catalog reopens with a seal hook, and only then', async () => {
    const { RecordingCatalog } = await import('../../recorder/catalog.js');
    const { createHash } = await import('node:crypto');
    const rdir = sub('recordings');
    const cat = await RecordingCatalog.open(rdir);
    const { meta, path } = await cat.create({ protocol: 'postgres', format: 'jsonl', user: 'u', subject: 's', login: 'l', target: 't' });
    const bytes = Buffer.from('{"t":"2026-12-02T00:00:00Z","type":"start"}\n{"t":"x","type":"statement","sql":"select 1"}\n');
    await writeFile(path, bytes);
    const sealed: { id: string; sha256?: string; status: string }[] = [];
    await RecordingCatalog.open(rdir, { onSealed: async (m) => void sealed.push(m) });
    expect(sealed).toEqual([expect.objectContaining({ id: meta.id, status: 'interrupted', sha256: createHash('sha256').update(bytes).digest('hex') })]);
    expect((await cat.get(meta.id))?.endReason).toMatch(/sealed as found at restart/);
  });
});
