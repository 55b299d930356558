import { rawStreamBytes } from '../../recorder/raw-reader.js';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingCatalog } from '../../recorder/catalog.js';
import { rawSummary } from '../../recorder/raw-reader.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const meta = { user: 'u', subject: 's', login: 'root', target: 'web' };
const header = { width: 80, height: 24, env: {}, title: 't' };
async function catalog() {
  const dir = await mkdtemp(join(tmpdir(), 'ssh-rec-'));
  dirs.push(dir);
  return RecordingCatalog.open(dir);
}

describe('SshRecorder: the format is chosen by the first channel', () => {
  it('a pty first: asciicast, with markers made before the choice, in order', async () => {
    const cat = await catalog();
    const rec = await cat.start('ssh', meta, { header });
    rec.marker('before the pty');
    rec.start({ width: 100, height: 40 });
    await rec.close('bye');
    const m = (await cat.get(rec.id))!;
    expect(m).toMatchObject({ format: 'asciicast', status: 'ended' });
    const lines = (await readFile(cat.dataPath(rec.id, 'asciicast'), 'utf8')).trim().split('\n');
    expect(JSON.parse(lines[0]!)).toMatchObject({ version: 2, width: 100, height: 40 });
    expect(lines.slice(1).map((l) => JSON.parse(l)[2])).toEqual(['before the pty', 'end: bye']);
  });

  it('a pty first, then channels without one: those go byte-exact into one side recording, sealed with the connection', async () => {
    const cat = await catalog();
    const rec = await cat.start('ssh', meta, { header });
    rec.start({ width: 80, height: 24 });
    const a = rec.rawChannel({ kind: 'raw', label: 'exec: cat /a' })!;
    // Written before the side file exists: kept in order.
    a.data('stdout', Buffer.from([0, 255, 1]));
    a.data('stderr', Buffer.from('e'));
    const b = rec.rawChannel({ kind: 'sftp' })!;
    b.data('stdin', Buffer.from([9, 9]));
    await new Promise((r) => setTimeout(r, 20));
    a.data('stdout', Buffer.from([2]));
    expect(rec.sideId).toBeDefined();
    await rec.close('bye');
    const side = (await cat.get(rec.sideId!))!;
    expect(side).toMatchObject({ format: 'raw', status: 'ended', parent: rec.id });
    const path = cat.dataPath(side.id, 'raw');
    const bytes = async (s: 'stdout' | 'stderr' | 'stdin') => { const parts: Buffer[] = []; for await (const p of rawStreamBytes(path, s)) parts.push(p); return Buffer.concat(parts); };
    expect([...await bytes('stdout')]).toEqual([0, 255, 1, 2]);
    expect((await bytes('stderr')).toString()).toBe('e');
    expect([...await bytes('stdin')]).toEqual([9, 9]);
    const cast = await readFile(cat.dataPath(rec.id, 'asciicast'), 'utf8');
    expect(cast).toContain(`exec: cat /a (no pty): recorded losslessly in recording ${side.id}`);
  });

  it('no pty first: the file becomes ID.raw, the catalog says raw, markers kept', async () => {
    const cat = await catalog();
    const rec = await cat.start('ssh', meta, { header });
    rec.marker('exec: cat /x');
    const ch = rec.rawChannel({ kind: 'raw' })!;
    ch.data('stdout', Buffer.from([0, 1, 2]));
    await rec.close('done');
    const m = (await cat.get(rec.id))!;
    expect(m).toMatchObject({ format: 'raw', status: 'ended' });
    expect(m.sha256).toBe(rec.sha256);
    const s = await rawSummary(cat.dataPath(rec.id, 'raw'));
    expect(s.markers.map((x) => x.label)).toEqual(['exec: cat /x', 'end: done']);
    expect(s.channels[0]!.streams.stdout!.bytes).toBe(3);
  });

  it('fails closed when the raw file cannot be set up: the session is told, the entry ends interrupted', async () => {
    const cat = await catalog();
    const rec = await cat.start('ssh', meta, { header });
    const errors: Error[] = [];
    rec.onError = (e) => errors.push(e);
    // The data file is gone before the rename: the fault this test injects.
    await rm(cat.dataPath(rec.id, 'asciicast'));
    rec.rawChannel({ kind: 'raw' });
    await new Promise((r) => setTimeout(r, 10));
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('raw recording could not be set up')]);
    await expect(rec.close('x')).rejects.toThrow('raw recording could not be set up');
    expect(await cat.get(rec.id)).toMatchObject({ status: 'interrupted' });
  });

  it('a recording killed between the rename and the catalog update is found as raw on restart', async () => {
    const cat = await catalog();
    const rec = await cat.start('ssh', meta, { header });
    const { rename } = await import('node:fs/promises');
    await rename(cat.dataPath(rec.id, 'asciicast'), cat.dataPath(rec.id, 'raw'));
    const again = await RecordingCatalog.open(cat.dir);
    expect(await again.get(rec.id)).toMatchObject({ status: 'interrupted', format: 'raw' });
  });
});
