import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import ssh2 from 'ssh2';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestControlPlane } from '../helpers/control-plane.js';
import { startTransferStack, type TransferStack } from '../helpers/ssh-transfer-stack.js';
import { OPENSSH_OPTS, runOpenSsh, waitFor, type TestSshd } from '../helpers/sshd.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { rawStreamBytes, rawSummary, rawAsCast } from '../../recorder/raw-reader.js';
import { recordingText } from '../../recorder/export.js';

// Real OpenSSH client → broker → real sshd on this machine ("the target" is this filesystem).
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;
let dir: string;
let token: string;

let stack: TransferStack;

beforeAll(async () => {
  stack = await startTransferStack('pam-raw-');
  ({ sshd, cp, broker, dir, token } = stack);
});

afterAll(async () => {
  await stack?.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sshArgs = () => ['-o', `Port=${broker.port}`, '-o', 'User=root@web', '-o', 'LogLevel=ERROR'];

/** `sshpass ssh … command` with binary stdin and stdout kept as Buffers. */
function sshBinary(command: string, input?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('sshpass', ['-P', 'IAM token', '-e', 'ssh', ...OPENSSH_OPTS, ...sshArgs(), '127.0.0.1', command], { env: { ...process.env, SSHPASS: token } });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    p.stdin.end(input ?? Buffer.alloc(0));
  });
}

const seen = new Set<string>();
/** The next recording sealed that no earlier step took (`before`: not started before it). */
async function sealedSince(before: number): Promise<RecordingMeta> {
  const m = await waitFor(async () => (await cp.deps.recordings.list()).find((m) => m.status === 'ended' && m.sha256 && !seen.has(m.id) && Date.parse(m.start) >= before), 'a sealed recording');
  seen.add(m.id);
  return m;
}

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of gen) parts.push(b);
  return Buffer.concat(parts);
}

describe('raw recording of channels without a pty', () => {
  it('carries random binary through `ssh host cat` byte-identical; the raw export is the file, the recording ≤ 1.1x', async () => {
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const file = join(dir, 'random.bin');
    await writeFile(file, content);
    const before = Date.now() - 1000;
    const r = await sshBinary(`cat ${file}`);
    expect(r.code).toBe(0);
    expect(r.stdout.equals(content)).toBe(true);

    const meta = await sealedSince(before);
    expect(meta.format).toBe('raw');
    const path = cp.deps.recordings.dataPath(meta.id, 'raw');
    const exported = await collect(rawStreamBytes(path, 'stdout'));
    expect(sha(exported)).toBe(sha(content));
    const size = (await stat(path)).size;
    expect(size).toBe(meta.bytes);
    expect(size).toBeLessThanOrEqual(1.1 * content.length);
    // The seal is over the file as it is on disk.
    expect(sha(await readFile(path))).toBe(meta.sha256);
    const s = await rawSummary(path);
    const stdout = s.channels.flatMap((c) => (c.streams.stdout ? [c.streams.stdout] : []))[0]!;
    expect(stdout).toMatchObject({ bytes: content.length, sha256: sha(content), binary: true, head: content.subarray(0, 256).toString('hex') });
    expect(s.truncated).toBe(false);
    expect(s.markers.map((m) => m.label)).toEqual(expect.arrayContaining([`exec: cat ${file}`, 'exit status 0']));
  });

  it('records stdin and stderr as their own streams, and renders text and asciicast exports', async () => {
    const input = Buffer.concat([randomBytes(70_000), Buffer.from('\u0000tail')]);
    const before = Date.now() - 1000;
    const r = await sshBinary('cat > /dev/null; echo to-stderr-$((6*7)) >&2; echo out-$((2+3))', input);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('out-5\n');
    expect(r.stderr).toContain('to-stderr-42');
    const meta = await sealedSince(before);
    const path = cp.deps.recordings.dataPath(meta.id, meta.format);
    expect((await collect(rawStreamBytes(path, 'stdin'))).equals(input)).toBe(true);
    expect((await collect(rawStreamBytes(path, 'stderr'))).toString()).toBe('to-stderr-42\n');
    expect((await collect(rawStreamBytes(path, 'stdout'))).toString()).toBe('out-5\n');
    const text = await recordingText(meta, path);
    expect(text).toContain('out-5');
    expect(text).toContain('to-stderr-42');
    const cast: string[] = [];
    for await (const line of rawAsCast(path)) cast.push(line);
    expect(JSON.parse(cast[0]!)).toMatchObject({ version: 2 });
    expect(cast.slice(1).every((l) => Array.isArray(JSON.parse(l)))).toBe(true);
  });

  it('rsync and tar pipes arrive byte-identical and are recorded whole', async () => {
    const src = join(dir, 'tree');
    await mkdir(join(src, 'sub'), { recursive: true });
    const files = { 'a.bin': randomBytes(400_000), 'sub/b.bin': randomBytes(123_457), 'zeros.bin': Buffer.alloc(500_000) };
    for (const [n, c] of Object.entries(files)) await writeFile(join(src, n), c);

    // rsync over the broker (its -e ssh runs `rsync --server` as an exec channel).
    const dest = join(dir, 'rsync-dest');
    const before = Date.now() - 1000;
    const rs = await new Promise<number | null>((resolve) => {
      const e = ['sshpass', '-P', "'IAM token'", '-e', 'ssh', ...OPENSSH_OPTS, ...sshArgs()].join(' ');
      const p = spawn('rsync', ['-a', '-e', e, `${src}/`, `127.0.0.1:${dest}/`], { env: { ...process.env, SSHPASS: token }, stdio: 'ignore' });
      p.once('close', resolve);
    });
    expect(rs).toBe(0);
    for (const [n, c] of Object.entries(files)) expect((await readFile(join(dest, n))).equals(c)).toBe(true);
    const rmeta = await sealedSince(before);
    expect(rmeta.format).toBe('raw');
    const rpath = cp.deps.recordings.dataPath(rmeta.id, 'raw');
    // rsync's protocol went up as stdin: every file's bytes are in it (rsync sends new files whole).
    const up = await collect(rawStreamBytes(rpath, 'stdin'));
    expect(up.length).toBeGreaterThan(files['a.bin'].length);
    expect(up.includes(files['a.bin'].subarray(1000, 1100))).toBe(true);

    // tar c | ssh host 'tar x'
    const tarDest = join(dir, 'tar-dest');
    await mkdir(tarDest);
    const tarBytes = await new Promise<Buffer>((resolve) => {
      const p = spawn('tar', ['-C', src, '-c', '.']);
      const out: Buffer[] = [];
      p.stdout.on('data', (d: Buffer) => out.push(d));
      p.once('close', () => resolve(Buffer.concat(out)));
    });
    const before2 = Date.now() - 1000;
    const t = await sshBinary(`tar -C ${tarDest} -x`, tarBytes);
    expect(t.code).toBe(0);
    for (const [n, c] of Object.entries(files)) expect((await readFile(join(tarDest, n))).equals(c)).toBe(true);
    const tmeta = await sealedSince(before2);
    const tpath = cp.deps.recordings.dataPath(tmeta.id, 'raw');
    expect(sha(await collect(rawStreamBytes(tpath, 'stdin')))).toBe(sha(tarBytes));
    expect((await stat(tpath)).size).toBeLessThanOrEqual(1.1 * tarBytes.length);
  });

  it('a multiplexed connection: the pty channel stays asciicast, a later exec is a lossless side recording', async () => {
    const content = randomBytes(1024 * 1024 + 3);
    const file = join(dir, 'mux.bin');
    await writeFile(file, content);
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => token)));
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({ host: '127.0.0.1', port: broker.port, username: 'root@web', tryKeyboard: true, readyTimeout: 20_000 });
    });
    const before = Date.now() - 1000;
    const shell = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, ch) => (err ? reject(err) : resolve(ch))));
    shell.write('echo mux-$((6*7))\n');
    let screen = '';
    shell.on('data', (d: Buffer) => (screen += d.toString()));
    await waitFor(() => screen.includes('mux-42'), 'the shell answered');
    const got = await new Promise<{ out: Buffer; err: Buffer }>((resolve, reject) => client.exec(`cat ${file}; head -c 5000 ${file} >&2`, (err, ch) => {
      if (err) return reject(err);
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      ch.on('data', (d: Buffer) => out.push(d));
      ch.stderr.on('data', (d: Buffer) => errs.push(d));
      ch.on('close', () => resolve({ out: Buffer.concat(out), err: Buffer.concat(errs) }));
    }));
    expect(got.out.equals(content)).toBe(true);
    shell.end('exit\n');
    client.end();

    const metas = () => cp.deps.recordings.list();
    const main = await waitFor(async () => (await metas()).find((m) => m.format === 'asciicast' && m.status === 'ended' && Date.parse(m.start) >= before && !m.parent), 'the connection recording');
    const side = await waitFor(async () => (await metas()).find((m) => m.parent === main.id && m.status === 'ended' && m.sha256), 'the side recording');
    seen.add(main.id);
    seen.add(side.id);
    expect(side.format).toBe('raw');
    const cast = await readFile(cp.deps.recordings.dataPath(main.id, 'asciicast'), 'utf8');
    expect(JSON.parse(cast.split('\n')[0]!)).toMatchObject({ version: 2 });
    expect(cast).toContain('mux-42');
    expect(cast).toContain(`recorded losslessly in recording ${side.id}`);
    // The bulk output is not in the cast as text: it is in the side recording, exactly.
    expect(cast.length).toBeLessThan(content.length / 4);
    const sidePath = cp.deps.recordings.dataPath(side.id, 'raw');
    expect(sha(await collect(rawStreamBytes(sidePath, 'stdout')))).toBe(sha(content));
    expect((await collect(rawStreamBytes(sidePath, 'stderr'))).equals(content.subarray(0, 5000))).toBe(true);
    expect(sha(await readFile(sidePath))).toBe(side.sha256);
    expect((await stat(sidePath)).size).toBeLessThanOrEqual(1.1 * (content.length + 5000));
  });

  it('keeps pty sessions in asciicast v2', async () => {
    const before = Date.now() - 1000;
    const r = await runOpenSsh('ssh', token, ['-tt', ...sshArgs(), '127.0.0.1', 'echo pty-$((4*4))'], '');
    expect(r.stdout).toContain('pty-16');
    const meta = await sealedSince(before);
    expect(meta.format).toBe('asciicast');
    const cast = await readFile(cp.deps.recordings.dataPath(meta.id, 'asciicast'), 'utf8');
    expect(JSON.parse(cast.split('\n')[0]!)).toMatchObject({ version: 2 });
    expect(cast).toContain('pty-16');
  });

  it('records each file moved by sftp and legacy scp with path, direction, size and SHA-256; content kept once per hash where asked', async () => {
    const a = randomBytes(300_001);
    const b = randomBytes(77_777);
    const local = join(dir, 'up-a.bin');
    await writeFile(local, a);
    await writeFile(join(dir, 'up-b.bin'), b);
    const at = (target: string) => ['-o', `Port=${broker.port}`, '-o', `User=root@${target}`];

    // sftp through a hash-only target: records, no content kept.
    let before = Date.now() - 1000;
    const remote = join(dir, 'remote-a.bin');
    const back = join(dir, 'back-a.bin');
    const r = await runOpenSsh('sftp', token, [...at('web'), '127.0.0.1'], `put ${local} ${remote}\nget ${remote} ${back}\nbye\n`);
    expect(r.code).toBe(0);
    expect((await readFile(back)).equals(a)).toBe(true);
    let meta = await sealedSince(before);
    expect(meta.format).toBe('raw');
    let s = await rawSummary(cp.deps.recordings.dataPath(meta.id, 'raw'));
    expect(s.transfers).toEqual([
      expect.objectContaining({ path: remote, direction: 'upload', size: a.length, sha256: sha(a), via: 'sftp' }),
      expect.objectContaining({ path: remote, direction: 'download', size: a.length, sha256: sha(a), via: 'sftp' }),
    ]);
    expect(s.transfers.some((t) => t.stored)).toBe(false);

    // The same file twice and another through a content-keeping target: two contents kept.
    before = Date.now() - 1000;
    const r2 = await runOpenSsh('sftp', token, [...at('files'), '127.0.0.1'], `put ${local} ${join(dir, 'c1.bin')}\nput ${local} ${join(dir, 'c2.bin')}\nput ${join(dir, 'up-b.bin')} ${join(dir, 'c3.bin')}\nbye\n`);
    expect(r2.code).toBe(0);
    meta = await sealedSince(before);
    s = await rawSummary(cp.deps.recordings.dataPath(meta.id, 'raw'));
    expect(s.transfers.map((t) => [t.path, t.sha256, t.stored])).toEqual([
      [join(dir, 'c1.bin'), sha(a), true], [join(dir, 'c2.bin'), sha(a), true], [join(dir, 'c3.bin'), sha(b), true],
    ]);
    const store = cp.deps.recordings.transfers();
    await waitFor(async () => (await readFile(store.path(sha(b))).catch(() => undefined))?.equals(b), 'kept content');
    expect((await readFile(store.path(sha(a)))).equals(a)).toBe(true);
    expect((await readdir(store.dir)).filter((n) => !n.startsWith('.'))).toHaveLength(2);

    // Legacy scp (-O) both ways.
    before = Date.now() - 1000;
    const up = await runOpenSsh('scp', token, ['-O', ...at('files'), local, `127.0.0.1:${join(dir, 'scp-a.bin')}`]);
    expect(up.code).toBe(0);
    meta = await sealedSince(before);
    s = await rawSummary(cp.deps.recordings.dataPath(meta.id, 'raw'));
    expect(s.transfers).toEqual([expect.objectContaining({ path: join(dir, 'scp-a.bin'), direction: 'upload', size: a.length, sha256: sha(a), via: 'scp', stored: true })]);
    before = Date.now() - 1000;
    const down = await runOpenSsh('scp', token, ['-O', ...at('web'), `127.0.0.1:${join(dir, 'up-b.bin')}`, join(dir, 'scp-back.bin')]);
    expect(down.code).toBe(0);
    expect((await readFile(join(dir, 'scp-back.bin'))).equals(b)).toBe(true);
    meta = await sealedSince(before);
    s = await rawSummary(cp.deps.recordings.dataPath(meta.id, 'raw'));
    expect(s.transfers).toEqual([expect.objectContaining({ path: join(dir, 'up-b.bin'), direction: 'download', size: b.length, sha256: sha(b), via: 'scp' })]);
  });
});
