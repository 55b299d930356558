// The dependency rule (.dependency-cruiser.cjs, docs/ARCHITECTURE.md "Layers") as CI runs it:
// it passes on this tree and fails on a small tree that breaks it, one break per rule.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const cruiser = join(root, 'node_modules/.bin/depcruise');
const config = join(root, '.dependency-cruiser.cjs');

function cruise(files: Record<string, string>): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dep-rule-'));
  try {
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const folders = [...new Set(Object.keys(files).map((f) => f.split('/')[0]))];
    const r = spawnSync(cruiser, [...folders, '--config', config], { cwd: dir, encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('dependency rule', () => {
  it('passes on this tree (npm run lint:deps)', () => {
    const out = execFileSync('npm', ['run', '-s', 'lint:deps'], { cwd: root, encoding: 'utf8' });
    expect(out).toContain('no dependency violations found');
  });

  it('passes on a tree that follows the layers', () => {
    const r = cruise({
      'config/c.ts': 'export const c = 1;\n',
      'access/a.ts': "import { c } from '../config/c.js';\nexport const a = c;\n",
      'proxy/p.ts': "import { a } from '../access/a.js';\nexport const p = a;\n",
      'app/m.ts': "import { p } from '../proxy/p.js';\nexport const m = p;\n",
    });
    expect(r.out).toContain('no dependency violations found');
    expect(r.status).toBe(0);
  });

  it.each([
    ['core-imports-no-adapter', { 'access/a.ts': "import { p } from '../proxy/p.js';\nexport const a = p;\n", 'proxy/p.ts': 'export const p = 1;\n' }],
    ['nothing-imports-the-app', { 'cli/c.ts': "import { m } from '../app/m.js';\nexport const c = m;\n", 'app/m.ts': 'export const m = 1;\n' }],
    ['brokers-import-no-other-adapter', { 'proxy/p.ts': "import { u } from '../replay-ui/server/u.js';\nexport const p = u;\n", 'replay-ui/server/u.ts': 'export const u = 1;\n' }],
    ['config-is-the-bottom', { 'config/c.ts': "import { r } from '../recorder/r.js';\nexport const c = r;\n", 'recorder/r.ts': 'export const r = 1;\n' }],
    ['no-circular', { 'proxy/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n", 'proxy/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n" }],
  ])('fails on a break of %s', (rule, files) => {
    const r = cruise(files as Record<string, string>);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain(`error ${rule}`);
  });
});
