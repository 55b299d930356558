/**
 * The offline viewer of an evidence bundle in real Chromium, opened from file:// with no server
 * at all: the terminal session replays in the bundled asciinema-player, the Postgres session's
 * statements show in the timeline. Bundles are made by the real control plane (evidence key,
 * witness, catalog seal → audit entry → checkpoint → inclusion proof).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { waitFor } from '../helpers/sshd.js';
import { evidencePackage } from '../../recorder/evidence/bundle-source.js';
import { verifyBundle, writeBundle } from '../../recorder/evidence/bundle.js';
import { parsePublicKeys } from '../../recorder/evidence/signing-key.js';

let outside: string;
let cp: TestControlPlane;
let browser: Browser;

beforeAll(async () => {
  outside = await mkdtemp(join(tmpdir(), `pam-ev-e2e-${process.pid}-`));
  cp = await startControlPlane({
    targets: [],
    overrides: { evidence: { signingKeyFile: join(outside, 'evidence.key'), witness: `file://${join(outside, 'witness')}`, previousPublicKeys: [], checkpointIntervalMs: 60_000, origin: 'e2e' } },
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cp?.close();
  await rm(outside, { recursive: true, force: true });
});

const who = { user: 'dana', subject: 'dana-sub', login: 'root', target: 'web1' };

async function bundleOf(id: string, format: 'asciicast' | 'jsonl'): Promise<string> {
  await waitFor(async () => (await cp.audit()).some((e) => e.type === 'recording.sealed' && e.recording === id), 'the seal entry');
  const pkg = await evidencePackage(cp.deps.evidence, cp.deps.evidenceSources, id);
  const dir = join(outside, `bundle-${format}`);
  await writeBundle(dir, pkg, cp.deps.recordings.dataPath(id, format));
  expect((await verifyBundle(dir, parsePublicKeys(pkg.public_key))).problems).toEqual([]);
  return dir;
}

describe('evidence bundle viewer, offline', () => {
  it('replays a terminal recording with the bundled player, from file://', async () => {
    const w = await cp.deps.recordings.start('asciicast', who, { header: { width: 80, height: 24, env: {}, title: 'e2e' } });
    w.output('$ uname -a\r\nLinux evidence-host 6.1\r\n');
    w.output('$ echo replayed-offline-42\r\nreplayed-offline-42\r\n');
    await w.close('client disconnected');
    const dir = await bundleOf(w.id, 'asciicast');
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    await page.goto(pathToFileURL(join(dir, 'index.html')).href);
    await expect.poll(() => page.locator('#facts').textContent()).toContain(w.id);
    await page.locator('.ap-player').waitFor({ timeout: 20_000 });
    // Play to the end and read the terminal.
    await page.locator('.ap-overlay-start').click();
    await expect.poll(() => page.locator('#player .ap-term').innerText(), { timeout: 20_000 }).toContain('replayed-offline-42');
    expect(errors).toEqual([]);
    // Nothing left the folder: every request was for a file in it.
    expect(requests.every((u) => u.startsWith(pathToFileURL(dir).href))).toBe(true);
    await page.close();
  }, 60_000);

  it('shows a Postgres recording as the statement timeline, from file://', async () => {
    const w = await cp.deps.recordings.start('jsonl', { ...who, login: 'app', target: 'appdb', database: 'app' }, { start: { user: 'dana' } });
    w.event({ type: 'statement', sql: "select 'timeline-' || 42", tag: 'SELECT 1', rows: 1 });
    w.event({ type: 'statement', sql: 'drop table audit_trail', error: { sqlstate: '42501', message: 'denied by policy' } });
    // What a user typed is shown, never run: the attacker's markup stays text.
    w.event({ type: 'statement', sql: `select '</script><img src=x onerror="window.pwned=1">'`, tag: 'SELECT 1' });
    await w.close('client disconnected');
    const dir = await bundleOf(w.id, 'jsonl');
    const page = await browser.newPage();
    await page.goto(pathToFileURL(join(dir, 'index.html')).href);
    const rows = page.locator('#timeline tr');
    await expect.poll(() => rows.count()).toBeGreaterThanOrEqual(3);
    const text = await page.locator('#timeline').innerText();
    expect(text).toContain("select 'timeline-' || 42");
    expect(text).toContain('ERROR 42501 denied by policy');
    expect(text).toContain('<img src=x onerror="window.pwned=1">');
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    await page.close();
  }, 60_000);
});
