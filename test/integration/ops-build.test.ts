/**
 * The compiled release and `pam config`: `npm run build` in a copy of the checkout makes dist/,
 * `pam` then runs it (and `pam serve` from it serves, with its index worker and WebAssembly),
 * falls back to the sources once a source is newer, and with no dist/ at all; `pam config check`
 * validates without starting anything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, rm, symlink, utimes, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '../helpers/sshd.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
let copy: string;

const pam = (args: string[], cwd = copy, env: Record<string, string> = {}) =>
  run(process.execPath, [join(cwd, 'bin/pam.js'), ...args], { cwd, env: { ...process.env, PAM_FROM_SOURCE: '', ...env } })
    .then((r) => ({ code: 0, ...r }), (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }));

beforeAll(async () => {
  copy = await mkdtemp(join(tmpdir(), 'pam-build-'));
  for (const d of ['app', 'config', 'proxy', 'access', 'policies', 'recorder', 'replay-ui', 'cli', 'bin', 'scripts', 'examples']) {
    await cp(join(ROOT, d), join(copy, d), { recursive: true });
  }
  for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) await cp(join(ROOT, f), join(copy, f));
  await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
}, 60_000);

afterAll(async () => {
  await rm(copy, { recursive: true, force: true });
});

describe('compiled release', () => {
  it('runs the sources without a build, dist/ after npm run build, and the sources again once one changes', async () => {
    expect((await pam(['--version'])).stdout.trim()).toBe('pam-proxy (sources)');
    const built = await run('npm', ['run', 'build'], { cwd: copy });
    expect(built.stdout).toMatch(/built dist\//);
    expect(existsSync(join(copy, 'dist/app/main.js'))).toBe(true);
    expect((await readdir(join(copy, 'dist/recorder/json-escape')))).toContain('escape.wasm');
    expect((await readdir(join(copy, 'dist/recorder/index')))).toContain('ascii-scan.wasm');

    const v = await pam(['--version']);
    expect(v.stdout.trim()).toBe('pam-proxy (dist)');
    expect(v.stderr).toBe('');
    expect((await pam(['--help'])).stdout).toMatch(/pam config check FILE/);
    expect((await pam(['config', 'check', 'examples/pam.yaml'])).code).toBe(0);
    expect((await pam(['policy', 'test', '--config', 'examples/pam.yaml', '--user', 'dana', '--groups', 'dba', '--target', 'localdb', '--login', 'postgres', '--sql', 'drop table t'])).stdout).toMatch(/^(DENY|REVIEW|ALLOW|ALERT)/);

    // pam serve from dist/: the listeners, the index worker and the browser app's files.
    const dir = await mkdtemp(join(tmpdir(), 'pam-build-serve-'));
    await writeFile(join(dir, 'pam.yaml'), `listen: { http: "127.0.0.1:0", metrics: "127.0.0.1:0" }\ndata_dir: "./data"\npolicies_dir: "${join(copy, 'examples/policies')}"\nidentity: { dev: true }\n`);
    const serve = spawn(process.execPath, [join(copy, 'bin/pam.js'), 'serve', '--config', join(dir, 'pam.yaml')], { cwd: copy, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    serve.stdout.on('data', (d) => (out += d));
    serve.stderr.on('data', (d) => (out += d));
    try {
      const line = await waitFor(() => out.split('\n').find((l) => l.includes('"pam: serving"')), 'pam serve from dist/', 2400);
      const { http, metrics } = JSON.parse(line) as { http: string; metrics: string };
      expect((await fetch(`http://${http}/`)).status).toBe(200);
      expect(await (await fetch(`http://${metrics}/readyz`)).json()).toMatchObject({ status: 'ready' });
    } finally {
      serve.kill('SIGTERM');
      expect(await new Promise((r) => serve.once('exit', r))).toBe(0);
      await rm(dir, { recursive: true, force: true });
    }
    expect(out).not.toMatch(/sources changed/);

    // An edit after the build: the sources run, and pam says why.
    const later = new Date(Date.now() + 5000);
    await utimes(join(copy, 'cli/table.ts'), later, later);
    const stale = await pam(['--version']);
    expect(stale.stdout.trim()).toBe('pam-proxy (sources)');
    expect(stale.stderr).toMatch(/sources changed since `npm run build`/);
  }, 300_000);
});

describe('pam config check', () => {
  it('accepts a good file, names every problem of a bad one, and starts nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pam-check-'));
    try {
      const base = `listen: { http: "127.0.0.1:8080" }\ndata_dir: "./data"\npolicies_dir: "${join(ROOT, 'examples/policies')}"\nidentity: { dev: true }\n`;
      await writeFile(join(dir, 'good.yaml'), base);
      const good = await pam(['config', 'check', join(dir, 'good.yaml')], ROOT);
      expect(good.code).toBe(0);
      expect(good.stdout).toMatch(/good\.yaml: ok \(0 targets, \d+ roles, \d+ rules, http 127\.0\.0\.1:8080\)/);
      await writeFile(join(dir, 'files.yaml'), `${base}audit_export:\n  - { url: "https://h.example/x", secret_file: ./missing.key }\n`);
      const files = await pam(['config', 'check', join(dir, 'files.yaml')], ROOT);
      expect(files.code).toBe(2);
      expect(files.stderr).toMatch(/config: audit_export\[0\]\.secret_file: cannot read .*missing\.key: ENOENT/);
      await writeFile(join(dir, 'typo.yaml'), `${base}shutdown_grase: 5s\n`);
      const typo = await pam(['config', 'check', join(dir, 'typo.yaml')], ROOT);
      expect(typo.code).toBe(2);
      expect(typo.stderr).toMatch(/config: shutdown_grase: unknown key/);
      expect(existsSync(join(dir, 'data'))).toBe(false);
      const schema = JSON.parse((await pam(['config', 'schema'], ROOT)).stdout);
      expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['listen', 'audit_export', 'log', 'shutdown_grace']));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
