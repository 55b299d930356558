import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { link, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RsyncTransfer } from '../../proxy/ssh/rsync-transfer.js';
import { fNameCmp, sortFlist, type FlistEntry } from '../../proxy/ssh/rsync-flist.js';

// Real rsync streams, captured in the order they crossed a relay (test/helpers/rsync-tap.mjs, a
// "remote shell" that runs `rsync --server` locally and logs each chunk with its direction), fed
// to the decoder split at random places.
let dir: string;
const TAP = fileURLToPath(new URL('../helpers/rsync-tap.mjs', import.meta.url));
/** rsync and its relay run in their own process group, killed if a capture outlives its bound or the suite. */
const running = new Set<ChildProcess>();
const CAPTURE_BOUND_MS = 20_000;

type Chunk = { dir: 'c' | 't'; data: Buffer };
async function capture(args: string[]): Promise<{ command: string; chunks: Chunk[] }> {
  const log = join(dir, `tap-${randomBytes(4).toString('hex')}`);
  const rsync = spawn('rsync', ['-e', `${process.execPath} ${TAP}`, ...args], {
    env: { ...process.env, TAP_LOG: log }, stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  running.add(rsync);
  let stderr = '';
  rsync.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const end = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'bound'>((resolve, reject) => {
    const timer = setTimeout(() => resolve('bound'), CAPTURE_BOUND_MS);
    rsync.once('error', (err) => { clearTimeout(timer); reject(err); });
    rsync.once('close', (code, signal) => { clearTimeout(timer); running.delete(rsync); resolve({ code, signal }); });
  });
  if (end === 'bound') {
    killGroup(rsync);
    const seen = await readFile(log).then((b) => `${b.length} log bytes`, () => 'no log');
    throw new Error(`rsync ${args.join(' ')}: not finished after ${CAPTURE_BOUND_MS / 1000} s (killed; ${seen}); stderr: ${stderr}`);
  }
  if (end.code !== 0) throw new Error(`rsync ${args.join(' ')}: exit ${end.code ?? end.signal}; stderr: ${stderr}`);
  const raw = await readFile(log);
  const chunks: Chunk[] = [];
  for (let off = 0; off < raw.length;) {
    const n = raw.readUInt32LE(off + 1);
    chunks.push({ dir: raw[off] === 0x63 ? 'c' : 't', data: raw.subarray(off + 5, off + 5 + n) });
    off += 5 + n;
  }
  return { command: await readFile(`${log}.cmd`, 'utf8'), chunks };
}

/** Only while the group's leader (rsync) is not yet reaped, so the group id is still ours. */
function killGroup(rsync: ChildProcess): void {
  running.delete(rsync);
  if (rsync.exitCode !== null || rsync.signalCode !== null) return;
  try {
    process.kill(-rsync.pid!, 'SIGKILL');
  } catch {
    // ESRCH: the group has already gone.
  }
}

function decode(command: string, chunks: Chunk[], cuts: number[] = []) {
  const files: { path: string; name: string; direction: string; size: number; sha256?: string; why?: string }[] = [];
  const broken: string[] = [];
  const t = RsyncTransfer.forCommand(command, (f, d) => files.push({ ...f, size: d.size, ...(d.sha256 ? { sha256: d.sha256 } : {}), ...(d.why ? { why: d.why } : {}) }), (why) => broken.push(why))!;
  let k = 0;
  for (const c of chunks) {
    // Split each chunk at the next cut points (order kept: a chunk is whole before the next one starts).
    let off = 0;
    while (off < c.data.length) {
      const step = Math.max(1, cuts.length ? cuts[k++ % cuts.length]! : c.data.length);
      const piece = c.data.subarray(off, off + step);
      if (c.dir === 'c') t.fromClient(piece);
      else t.fromTarget(piece);
      off += step;
    }
  }
  t.end();
  return { files, broken };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let tree: Record<string, Buffer>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pam-rsync-unit-'));
  tree = { 'a.bin': randomBytes(100_000), 'b/c.bin': randomBytes(70_000), 'b/d/e.bin': Buffer.alloc(40_000), 'f.bin': Buffer.alloc(0), 'B.bin': randomBytes(33_000) };
  for (const [n, c] of Object.entries(tree)) {
    await mkdir(join(dir, 'src', n, '..'), { recursive: true });
    await writeFile(join(dir, 'src', n), c);
  }
  // A hard link: with -H rsync sends it as a link to the first name (the list entry carries its index).
  await link(join(dir, 'src', 'a.bin'), join(dir, 'src', 'b', 'hl.bin'));
  tree['b/hl.bin'] = tree['a.bin']!;
});
afterAll(async () => {
  for (const rsync of running) killGroup(rsync);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('RsyncTransfer on captured rsync streams', () => {
  it('gives one hashed record per file, up and down, however the stream is split', async () => {
    const up = await capture(['-a', `${join(dir, 'src')}/`, `localhost:${join(dir, 'up')}/`]);
    const down = await capture(['-a', `localhost:${join(dir, 'src')}/`, `${join(dir, 'down')}/`]);
    for (const [cap, direction] of [[up, 'upload'], [down, 'download']] as const) {
      const whole = decode(cap.command, cap.chunks);
      expect(whole.broken).toEqual([]);
      expect(whole.files.map((f) => [f.name, f.direction, f.size, f.sha256]).sort()).toEqual(Object.entries(tree).map(([n, c]) => [n, direction, c.length, sha(c)]).sort());
      fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }), (cuts) => {
        expect(decode(cap.command, cap.chunks, cuts)).toEqual(whole);
      }), { numRuns: 40 });
    }
  });

  it('follows the options that change the stream: --delete (filter list), -c, -H, --numeric-ids without -r, --checksum-choice, -z', async () => {
    const src = join(dir, 'src');
    const runs: [string[], 'upload' | 'download'][] = [
      [['-a', '--delete', `${src}/`, `localhost:${join(dir, 'del')}/`], 'upload'],
      [['-acH', `${src}/`, `localhost:${join(dir, 'ch')}/`], 'upload'],
      [['-lptgoD', '--numeric-ids', '-d', `localhost:${src}/a.bin`, `localhost:${src}/B.bin`, `${join(dir, 'flat')}/`], 'download'],
      [['-a', '--checksum-choice=md5', `localhost:${src}/`, `${join(dir, 'md5')}/`], 'download'],
    ];
    for (const [args, direction] of runs) {
      const cap = await capture(args);
      const r = decode(cap.command, cap.chunks);
      expect(r.broken, cap.command).toEqual([]);
      expect(r.files.length, cap.command).toBeGreaterThan(0);
      for (const f of r.files) expect(f, cap.command).toMatchObject({ direction, size: tree[f.name]!.length, sha256: sha(tree[f.name]!) });
    }
    const z = await capture(['-az', `localhost:${src}/`, `${join(dir, 'z')}/`]);
    const rz = decode(z.command, z.chunks);
    expect(rz.broken).toEqual([]);
    expect(rz.files).toHaveLength(Object.keys(tree).length);
    for (const f of rz.files) if (f.size) expect(f.why).toMatch(/compressed on the wire/);
  });

  it('stops at the first byte it cannot follow and says so once, whatever the bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.uint8Array({ minLength: 1, maxLength: 3000 }), (a, b) => {
      const r = decode('rsync --server -logDtpre.iLsfxCIvu . /tmp/x/', [{ dir: 't', data: Buffer.from(a) }, { dir: 'c', data: Buffer.from(b) }]);
      expect(r.broken.length).toBeLessThanOrEqual(1);
      for (const f of r.files) expect(f.sha256 === undefined || typeof f.sha256 === 'string').toBe(true);
    }), { numRuns: 300 });
  });

  it('ignores exec commands that are not a plain `rsync --server`', () => {
    expect(RsyncTransfer.forCommand('rsync -a a b', () => undefined, () => undefined)).toBeUndefined();
    expect(RsyncTransfer.forCommand('sudo rsync --server . /x', () => undefined, () => undefined)).toBeUndefined();
    expect(RsyncTransfer.forCommand('rsync --server . /x; rm -rf /', () => undefined, () => undefined)).toBeUndefined();
  });
});

describe('rsync file-list order (f_name_cmp)', () => {
  const e = (name: string, dirFlag = false): FlistEntry => {
    const b = Buffer.from(name);
    const s = b.lastIndexOf(0x2f);
    return { name, dir: s < 0 ? undefined : b.subarray(0, s), base: s < 0 ? b : b.subarray(s + 1), mode: dirFlag ? 0o040755 : 0o100644, size: 0 };
  };
  it('puts "." first, files before directories at each depth, and a directory right before its contents', () => {
    const list = [e('b', true), e('a.txt'), e('.', true), e('b/x'), e('B'), e('a', true), e('a/z'), e('b/y', true), e('ab')];
    expect(sortFlist(list).map((x) => x.name)).toEqual(['.', 'B', 'a.txt', 'ab', 'a', 'a/z', 'b', 'b/x', 'b/y']);
    expect(fNameCmp(e('a'), e('a'))).toBe(0);
  });
});
