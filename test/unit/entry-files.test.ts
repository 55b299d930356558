import { linkSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryFiles } from '../../recorder/entry-files.js';

let dir: string;
afterEach(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

const ino = (p: string) => statSync(p).ino;
const spares = () => readdirSync(dir).filter((n) => n.startsWith('.spare-'));

describe('EntryFiles (atomic rewrites without freeing an inode)', () => {
  it('a rewrite keeps the replaced inode as a spare and the next rewrite goes into it: no inode freed, none created', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-entries-'));
    const files = await EntryFiles.open(dir);
    const a = join(dir, 'a.meta.json');
    await files.write(a, '{"v":1}', false);
    const first = ino(a);
    await files.write(a, '{"v":2}', true);
    expect(readFileSync(a, 'utf8')).toBe('{"v":2}');
    expect(files.spareCount).toBe(1);
    expect(ino(join(dir, spares()[0]!))).toBe(first); // the replaced inode, not freed
    await files.write(a, '{"v":3,"longer":true}', true);
    expect(readFileSync(a, 'utf8')).toBe('{"v":3,"longer":true}');
    expect(ino(a)).toBe(first); // written into the spare: no file created for it
    await files.write(a, '{"v":4}', true); // shorter than the spare's old text: truncated first
    expect(readFileSync(a, 'utf8')).toBe('{"v":4}');
    expect(spares()).toHaveLength(1);
    expect(statSync(a).mode & 0o777).toBe(0o600);
  });

  it('never writes into a spare another name points at', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-entries-'));
    const files = await EntryFiles.open(dir);
    const a = join(dir, 'a.meta.json');
    await files.write(a, '{"v":1}', false);
    await files.write(a, '{"v":2}', true);
    // Fault: the spare is also linked as another entry (as if a stop left it linked).
    const other = join(dir, 'b.meta.json');
    linkSync(join(dir, spares()[0]!), other);
    expect(statSync(other).nlink).toBe(2); // the fault is in place
    await files.write(a, '{"v":3}', true);
    expect(readFileSync(a, 'utf8')).toBe('{"v":3}');
    expect(readFileSync(other, 'utf8')).toBe('{"v":1}');
  });

  it('writes of one path land in the order they were made', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-entries-'));
    const files = await EntryFiles.open(dir);
    const a = join(dir, 'a.meta.json');
    await files.write(a, '0', false);
    await Promise.all(Array.from({ length: 20 }, (_, i) => files.write(a, String(i + 1), true)));
    expect(readFileSync(a, 'utf8')).toBe('20');
    expect(readdirSync(dir).filter((n) => !n.startsWith('.spare-'))).toEqual(['a.meta.json']);
  });

  it('removes the spares a stopped process left, and only those', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pam-entries-'));
    writeFileSync(join(dir, 'a.meta.json'), '{}');
    linkSync(join(dir, 'a.meta.json'), join(dir, '.spare-0123456789ab')); // linked to an entry when it stopped
    writeFileSync(join(dir, '.spare-ba9876543210'), 'old');
    await EntryFiles.open(dir);
    expect(readdirSync(dir)).toEqual(['a.meta.json']);
    expect(readFileSync(join(dir, 'a.meta.json'), 'utf8')).toBe('{}');
  });
});
