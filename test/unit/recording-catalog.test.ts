import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingCatalog } from '../../recorder/catalog.js';
import { fileSha256 } from '../../recorder/verify.js';

const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), 'pam-catalog-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
const who = { user: 'alice', subject: 'sub-alice', login: 'root', target: 'web', clientAddress: '127.0.0.1:1', grantId: 'g1' };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('RecordingCatalog.start', () => {
  it('opens a terminal recording live and seals it at close: ended, SHA-256 and size of the file', async () => {
    const cat = await RecordingCatalog.open(join(dir, 'ssh'));
    const w = await cat.start('asciicast', who, { header: { width: 80, height: 24, env: {}, title: 't' } });
    expect(await cat.get(w.id)).toMatchObject({ status: 'live', protocol: 'ssh', format: 'asciicast', user: 'alice', grantId: 'g1' });
    w.output(Buffer.from('hello ✓\r\n'));
    await w.close('client disconnected');
    const data = await readFile(cat.dataPath(w.id, 'asciicast'));
    const meta = (await cat.get(w.id))!;
    expect(meta).toMatchObject({ status: 'ended', endReason: 'client disconnected', bytes: data.length, sha256: sha(data) });
    expect(w.sha256).toBe(meta.sha256);
    expect(data.toString()).toContain('hello ✓');
    expect(await fileSha256(cat.dataPath(w.id, 'asciicast'))).toBe(meta.sha256);
    // Idempotent: a second close changes nothing.
    await w.close('again');
    expect(await cat.get(w.id)).toEqual(meta);
  });

  it('opens a Postgres recording with its start line and seals it at close', async () => {
    const cat = await RecordingCatalog.open(join(dir, 'pg'));
    const w = await cat.start('jsonl', { ...who, database: 'app' }, { start: { user: 'alice', database: 'app' } });
    expect(await cat.get(w.id)).toMatchObject({ status: 'live', protocol: 'postgres', format: 'jsonl', database: 'app' });
    w.event({ type: 'statement', sql: 'select 1' });
    await w.close('client terminated');
    const data = await readFile(cat.dataPath(w.id, 'jsonl'));
    const lines = data.toString().trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(lines.map((l) => l.type)).toEqual(['start', 'statement', 'end']);
    expect(await cat.get(w.id)).toMatchObject({ status: 'ended', endReason: 'client terminated', bytes: data.length, sha256: sha(data) });
    expect(w.sha256).toBe(sha(data));
  });

  it('marks the entry interrupted when the data file cannot be created, and throws', async () => {
    const cat = await RecordingCatalog.open(join(dir, 'taken'));
    const id = `${'0'.repeat(9)}-0badf00d`;
    cat.newId = () => id;
    // A file already in the way: the writer opens with O_EXCL and must not append to it.
    await writeFile(cat.dataPath(id, 'asciicast'), 'not ours\n');
    await expect(cat.start('asciicast', who, { header: { width: 80, height: 24, env: {}, title: 't' } })).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await cat.get(id)).toMatchObject({ status: 'interrupted', endReason: expect.stringContaining('could not be opened') });
    expect(await readFile(cat.dataPath(id, 'asciicast'), 'utf8')).toBe('not ours\n');
  });

  it('creates the entry and the data file side by side; when the entry cannot be written, start throws and leaves no data file', async () => {
    const cat = await RecordingCatalog.open(join(dir, 'no-entry'));
    const id = `${'0'.repeat(9)}-0deadbee`;
    cat.newId = () => id;
    // Fault: a directory where the entry goes, so renaming the written entry into place fails.
    await mkdir(join(dir, 'no-entry', `${id}.meta.json`));
    const err = await cat.start('jsonl', { ...who, database: 'app' }, { start: { user: 'alice' } }).catch((e: NodeJS.ErrnoException) => e);
    expect(err).toMatchObject({ code: expect.stringMatching(/^(EISDIR|EEXIST|ENOTEMPTY)$/) }); // the fault fired
    expect(existsSync(cat.dataPath(id, 'jsonl'))).toBe(false);
    expect((await readdir(join(dir, 'no-entry'))).filter((n) => !n.startsWith('.spare-'))).toEqual([`${id}.meta.json`]);
  });

  it('marks the entry interrupted, without a seal, when the data file cannot be written (file size limit)', async () => {
    // A file size limit stands in for a full disk: the kernel refuses writes past it (EFBIG).
    const script = join(dir, 'limited.mts');
    await writeFile(script, `
      import { RecordingCatalog } from ${JSON.stringify(resolve('recorder/catalog.ts'))};
      const cat = await RecordingCatalog.open(${JSON.stringify(join(dir, 'limited'))});
      const out = [];
      for (const format of ['asciicast', 'jsonl']) {
        const w = format === 'asciicast'
          ? await cat.start('asciicast', ${JSON.stringify(who)}, { header: { width: 80, height: 24, env: {}, title: 't' } })
          : await cat.start('jsonl', ${JSON.stringify(who)}, { start: {} });
        let reported = '';
        w.onError = (e) => (reported = e.code ?? e.message);
        for (let i = 0; i < 100; i++) format === 'asciicast' ? w.output('x'.repeat(10_000) + '\\n') : w.event({ type: 'statement', sql: 'x'.repeat(10_000) });
        await new Promise((r) => setTimeout(r, 300));
        let closed = 'resolved';
        try { await w.close('end'); } catch (e) { closed = e.code ?? 'error'; }
        const m = await cat.get(w.id);
        out.push({ format, reported, closed, status: m.status, sealed: m.sha256 !== undefined });
      }
      console.log(JSON.stringify(out));
    `);
    const { stdout } = await run('bash', ['-c', `trap '' XFSZ; ulimit -f 64; exec node bin/run-ts.js ${script}`]);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual([
      // The terminal writer rejects its close; the Postgres one resolves (as before): both entries say interrupted.
      { format: 'asciicast', reported: 'EFBIG', closed: 'EFBIG', status: 'interrupted', sealed: false },
      { format: 'jsonl', reported: 'EFBIG', closed: 'resolved', status: 'interrupted', sealed: false },
    ]);
  });
});
