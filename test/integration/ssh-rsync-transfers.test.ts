import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestControlPlane } from '../helpers/control-plane.js';
import { startTransferStack, type TransferStack } from '../helpers/ssh-transfer-stack.js';
import { OPENSSH_OPTS, waitFor, type TestSshd } from '../helpers/sshd.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { rawSummary } from '../../recorder/raw-reader.js';

// Real rsync (client) → OpenSSH ssh → broker → real sshd → real `rsync --server` on this machine.
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;
let dir: string;
let token: string;

let stack: TransferStack;

beforeAll(async () => {
  stack = await startTransferStack('pam-rsync-');
  ({ sshd, cp, broker, dir, token } = stack);
});

afterAll(async () => {
  await stack?.close();
});

/** SHA-256 as the target computes it (`sha256sum` on the target's filesystem). */
const sha256sum = (path: string) => execFileSync('sha256sum', [path]).toString().split(' ')[0]!;

const seen = new Set<string>();
async function sealedSince(before: number): Promise<RecordingMeta> {
  const m = await waitFor(async () => (await cp.deps.recordings.list()).find((m) => m.status === 'ended' && m.sha256 && !seen.has(m.id) && Date.parse(m.start) >= before), 'a sealed recording');
  seen.add(m.id);
  return m;
}

/** rsync with `-e` the OpenSSH client through the broker as alice at TARGET. */
function rsync(target: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const e = ['sshpass', '-P', "'IAM token'", '-e', 'ssh', ...OPENSSH_OPTS, '-o', `Port=${broker.port}`, '-o', `User=root@${target}`, '-o', 'LogLevel=ERROR'].join(' ');
  return new Promise((resolve) => {
    const p = spawn('rsync', ['-e', e, ...args], { env: { ...process.env, SSHPASS: token }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.once('close', (code) => resolve({ code, stderr }));
  });
}

async function transfersOf(meta: RecordingMeta) {
  expect(meta.format).toBe('raw');
  const s = await rawSummary(cp.deps.recordings.dataPath(meta.id, "raw"));
  return s.transfers;
}

/** A tree of binary files of different sizes (random, zeros, empty, nested, a name with a space). */
async function makeTree(root: string): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {
    'a.bin': randomBytes(400_000), 'sub/b.bin': randomBytes(123_457), 'sub/deeper/c d.bin': randomBytes(70_001),
    'zeros.bin': Buffer.alloc(500_000), 'empty.bin': Buffer.alloc(0), 'z-last.bin': randomBytes(3 * 1024 * 1024 + 5),
  };
  for (const [n, c] of Object.entries(files)) {
    await mkdir(join(root, n, '..'), { recursive: true });
    await writeFile(join(root, n), c);
  }
  return files;
}

describe('rsync through the broker: one transfer record per file', () => {
  it('records each uploaded file (new at the target) with its path, size and the SHA-256 sha256sum gives at the target', async () => {
    const src = join(dir, 'up-src');
    const files = await makeTree(src);
    const dest = join(dir, 'up-dest');
    const before = Date.now() - 1000;
    const r = await rsync('web', ['-a', `${src}/`, `127.0.0.1:${dest}/`]);
    expect(r.stderr).not.toMatch(/error|protocol/i);
    expect(r.code).toBe(0);
    const t = await transfersOf(await sealedSince(before));
    expect(t).toHaveLength(Object.keys(files).length);
    for (const [n, c] of Object.entries(files)) {
      const rec = t.find((x) => x.name === n);
      expect(rec, n).toMatchObject({ path: join(dest, n), direction: 'upload', size: c.length, via: 'rsync', sha256: sha256sum(join(dest, n)) });
    }
  });

  it('records downloads the same way, several sources and -z framing included', async () => {
    const src = join(dir, 'down-src');
    const files = await makeTree(src);
    const dest = join(dir, 'down-dest');
    let before = Date.now() - 1000;
    let r = await rsync('web', ['-a', `127.0.0.1:${src}/`, `${dest}/`]);
    expect(r.code).toBe(0);
    let t = await transfersOf(await sealedSince(before));
    expect(t).toHaveLength(Object.keys(files).length);
    for (const [n, c] of Object.entries(files)) {
      expect((await readFile(join(dest, n))).equals(c)).toBe(true);
      expect(t.find((x) => x.name === n), n).toMatchObject({ path: join(src, n), direction: 'download', size: c.length, via: 'rsync', sha256: sha256sum(join(src, n)) });
    }

    // -z: rsync's token stream is compressed (zstd here): sizes recorded, the hash said to be unavailable and why.
    const zdest = join(dir, 'down-z');
    before = Date.now() - 1000;
    r = await rsync('web', ['-az', `127.0.0.1:${src}/`, `${zdest}/`]);
    expect(r.code).toBe(0);
    t = await transfersOf(await sealedSince(before));
    expect(t).toHaveLength(Object.keys(files).length);
    for (const [n, c] of Object.entries(files)) {
      expect((await readFile(join(zdest, n))).equals(c)).toBe(true);
      const rec = t.find((x) => x.name === n)!;
      expect(rec).toMatchObject({ direction: 'download', size: c.length, via: 'rsync' });
      if (c.length) expect(rec.sha256).toBeUndefined();
      if (c.length) expect(String(rec.why)).toMatch(/compressed on the wire with zstd/);
    }
  });

  it('a delta against the copy at the receiver is recorded without a hash, saying why; -W sends it whole and hashed', async () => {
    const src = join(dir, 'delta-src');
    const dest = join(dir, 'delta-dest');
    await mkdir(src);
    const big = randomBytes(2 * 1024 * 1024);
    await writeFile(join(src, 'big.bin'), big);
    await writeFile(join(src, 'same.bin'), randomBytes(10_000));
    expect((await rsync('web', ['-a', `${src}/`, `127.0.0.1:${dest}/`])).code).toBe(0);
    await sealedSince(Date.now() - 60_000);

    // Change 100 bytes in the middle: rsync sends the changed block, the rest as matches.
    big.fill(7, 1_000_000, 1_000_100);
    await writeFile(join(src, 'big.bin'), big);
    await utimes(join(src, 'big.bin'), new Date(), new Date(Date.now() + 60_000));
    let before = Date.now() - 1000;
    expect((await rsync('web', ['-a', '--no-W', `${src}/`, `127.0.0.1:${dest}/`])).code).toBe(0);
    expect(sha256sum(join(dest, 'big.bin'))).toBe(createHash('sha256').update(big).digest('hex'));
    let t = await transfersOf(await sealedSince(before));
    // Only the changed file moves (same.bin is up to date).
    expect(t).toEqual([expect.objectContaining({ name: 'big.bin', path: join(dest, 'big.bin'), direction: 'upload', size: big.length, via: 'rsync' })]);
    expect(t[0]!.sha256).toBeUndefined();
    expect(String(t[0]!.why)).toMatch(/delta against the receiver's copy/);

    big.fill(9, 5, 50);
    await writeFile(join(src, 'big.bin'), big);
    // Same size: a new mtime makes rsync's quick check see the change.
    await utimes(join(src, 'big.bin'), new Date(), new Date(Date.now() + 120_000));
    before = Date.now() - 1000;
    expect((await rsync('web', ['-a', '-W', `${src}/`, `127.0.0.1:${dest}/`])).code).toBe(0);
    t = await transfersOf(await sealedSince(before));
    expect(t).toEqual([expect.objectContaining({ name: 'big.bin', size: big.length, sha256: sha256sum(join(dest, 'big.bin')) })]);
  });

  it('keeps the content once per hash where the target asks for it, and a single file lands under the name given', async () => {
    const one = join(dir, 'one.bin');
    const content = randomBytes(654_321);
    await writeFile(one, content);
    const before = Date.now() - 1000;
    expect((await rsync('files', [one, `127.0.0.1:${join(dir, 'renamed.bin')}`])).code).toBe(0);
    const t = await transfersOf(await sealedSince(before));
    const hash = sha256sum(join(dir, 'renamed.bin'));
    expect(t).toEqual([expect.objectContaining({ name: 'one.bin', path: join(dir, 'renamed.bin'), size: content.length, sha256: hash, stored: true })]);
    const store = cp.deps.recordings.transfers();
    await waitFor(async () => (await readFile(store.path(hash)).catch(() => undefined))?.equals(content), 'kept content');
    expect((await readdir(store.dir)).filter((n) => n === hash)).toHaveLength(1);
  });

  it('stops decoding what it cannot follow (-X), audits it, and the transfer is untouched', async () => {
    const src = join(dir, 'x-src');
    const files = await makeTree(src);
    const dest = join(dir, 'x-dest');
    const before = Date.now() - 1000;
    const r = await rsync('web', ['-aX', `${src}/`, `127.0.0.1:${dest}/`]);
    expect(r.code).toBe(0);
    for (const [n, c] of Object.entries(files)) expect((await readFile(join(dest, n))).equals(c)).toBe(true);
    const meta = await sealedSince(before);
    expect(await transfersOf(meta)).toEqual([]);
    const s = await rawSummary(cp.deps.recordings.dataPath(meta.id, 'raw'));
    expect(s.markers.map((m) => m.label)).toEqual(expect.arrayContaining([expect.stringMatching(/^rsync stream not followed \(rsync with ACLs or extended attributes/)]));
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'ssh.transfer.undecoded' && e.via === 'rsync' && String(e.why).includes('extended attributes'))).toBe(true);
  });
});
