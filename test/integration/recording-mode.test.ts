/**
 * `recording: { mode: strict | best-effort }` (issue 16) for both brokers, on the shipped process.
 * A file size limit (ulimit -f, SIGXFSZ ignored) stands in for a full recording disk: the kernel
 * refuses writes past it with EFBIG. Strict ends the session with a clear message and an audit
 * entry; best-effort lets it finish and marks the gap in the audit log and the catalog entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runOpenSsh, startSshd, waitFor, type RunResult, type TestSshd } from '../helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';

const PG_ROLE = `pam_rm_${process.pid}`;
const PG_PASS = 'rm-Secret-1';
const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]).toString();
/** KiB: every file the proxy writes stays under this; recordings in these tests go past it. */
const FILE_LIMIT_KB = 512;

let dir: string;
let sshd: TestSshd;
let proxy: PamProcess;
let ports: PamProcess['ports'];
let configFile: string;
let dana = '';

const run = (cmd: string, args: string[], env: Record<string, string> = {}, input?: string) => new Promise<RunResult>((resolve) => {
  const p = spawn(cmd, args, { env: { ...process.env, PAM_CONFIG: configFile, PAM_SERVER: `http://127.0.0.1:${ports.http}`, ...env } });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => (stderr += d));
  p.stdin.end(input ?? '');
  p.once('close', (code) => resolve({ code, stdout, stderr }));
});
const pam = (args: string[], env: Record<string, string> = {}, input?: string) => proxy.pam(args, env, input);
const auditEntries = async () => (await readFile(join(dir, 'data', 'audit.log'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
const catalogOf = async (id: string) => JSON.parse(await readFile(join(dir, 'data', 'recordings', `${id}.meta.json`), 'utf8')) as Record<string, unknown>;

beforeAll(async () => {
  sshd = await startSshd();
  psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}; SET password_encryption='scram-sha-256'; CREATE ROLE ${PG_ROLE} LOGIN PASSWORD '${PG_PASS}'`);
  const roles = `roles:
  - name: dba
    groups: [dba]
    can_request:
      - { targets: ["*"], logins: ["*"], max_duration: 1h }
  - name: security
    groups: [security]
    can_approve: [dba]
    can_audit: true
`;
  const ssh = (name: string, mode: string) => `  - name: ${name}
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web-root } }
    recording: { mode: ${mode} }
`;
  const pg = (name: string, mode: string) => `  - name: ${name}
    protocol: postgres
    address: "127.0.0.1:5432"
    database: postgres
    tls: disable
    logins: { ${PG_ROLE}: { secret: db-pass } }
    recording: { mode: ${mode} }
`;
  // Every file the proxy writes stays under the limit; SIGXFSZ ignored, so a write past it fails with EFBIG.
  proxy = await startPamProcess({
    roles,
    extra: `targets:
${ssh('web-strict', 'strict')}${ssh('web-best', 'best-effort')}${pg('db-strict', 'strict')}${pg('db-best', 'best-effort')}`,
    shellPrefix: `trap '' XFSZ; ulimit -f ${FILE_LIMIT_KB}`,
  });
  ({ dir, ports, configFile } = proxy);
  dana = (await pam(['dev', 'token', 'dana', '--groups', 'dba'])).stdout.trim();
  const sam = (await pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
  expect((await pam(['secret', 'set', 'web-root'], {}, sshd.userKey)).code).toBe(0);
  expect((await pam(['secret', 'set', 'db-pass'], {}, PG_PASS + '\n')).code).toBe(0);
  for (const [target, login] of [['web-strict', 'root'], ['web-best', 'root'], ['db-strict', PG_ROLE], ['db-best', PG_ROLE]] as const) {
    const req = await pam(['request', '--target', target, '--login', login, '--duration', '30m', '--reason', 'disk test', '--json'], { PAM_TOKEN: dana });
    expect((await pam(['approve', JSON.parse(req.stdout).id], { PAM_TOKEN: sam })).code).toBe(0);
  }
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await sshd?.close();
  try { psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}`); } catch { /* still connected */ }
});

/** About 5 MB of output over ~2 s, then a marker: far past the file limit. */
const FLOOD = 'for i in $(seq 1 40); do head -c 100000 /dev/zero | base64; sleep 0.05; done; echo flood-done';

async function recordingOf(target: string): Promise<string> {
  const starts = (await auditEntries()).filter((e) => e.type === 'session.start' && e.target === target);
  expect(starts).toHaveLength(1);
  return starts[0]!.recording as string;
}

describe('recording mode when the recording disk is full', () => {
  it('ssh, strict: the session is ended with the reason, and the failure is audited', async () => {
    const r = await runOpenSsh('ssh', dana, ['-p', String(ports.ssh), '-l', 'root@web-strict', '127.0.0.1', FLOOD]);
    const id = await recordingOf('web-strict');
    // The fault fired: the kernel refused a recording write.
    const failed = await waitFor(async () => (await auditEntries()).find((e) => e.type === 'recording.failed' && e.recording === id));
    expect(failed).toMatchObject({ mode: 'strict', target: 'web-strict' });
    expect(String(failed.error)).toMatch(/EFBIG|too large/i);
    expect(r.stdout).not.toContain('flood-done');
    expect(r.stdout + r.stderr).toMatch(/recording failed .*session ended \(recording mode strict\)/);
    const end = await waitFor(async () => (await auditEntries()).find((e) => e.type === 'session.end' && e.recording === id));
    expect(String(end.reason)).toMatch(/recording failed/);
  }, 60_000);

  it('ssh, best-effort: the session runs to the end, and the gap is marked in the audit log and the catalog', async () => {
    const r = await runOpenSsh('ssh', dana, ['-p', String(ports.ssh), '-l', 'root@web-best', '127.0.0.1', FLOOD]);
    expect(r.stdout).toContain('flood-done');
    expect(r.code).toBe(0);
    const id = await recordingOf('web-best');
    const gap = (await auditEntries()).find((e) => e.type === 'recording.gap' && e.recording === id);
    expect(gap).toMatchObject({ mode: 'best-effort', target: 'web-best' });
    expect(String(gap!.error)).toMatch(/EFBIG|too large/i);
    const end = await waitFor(async () => (await auditEntries()).find((e) => e.type === 'session.end' && e.recording === id));
    expect(end.recording_gap).toMatchObject({ from: gap!.from });
    const meta = await waitFor(async () => {
      const m = await catalogOf(id);
      return m.status !== 'live' ? m : undefined;
    });
    expect(String(meta.endReason)).toMatch(/recording stopped at .* the session went on unrecorded \(recording mode best-effort\)/);
    expect((await auditEntries()).some((e) => e.type === 'recording.failed' && e.recording === id)).toBe(false);
  }, 60_000);

  const bigSql = `select length('${'x'.repeat(700 * 1024)}');\nselect pg_sleep(0.5);\nselect 'after-' || 41 + 1;\n`;

  it('postgres, strict: the session is ended with the reason before the next statement runs', async () => {
    const r = await run('psql', [`host=127.0.0.1 port=${ports.pg} dbname=db-strict user=${PG_ROLE}`, '-At'], { PGPASSWORD: dana }, bigSql);
    const id = await recordingOf('db-strict');
    const failed = await waitFor(async () => (await auditEntries()).find((e) => e.type === 'recording.failed' && e.recording === id));
    expect(failed).toMatchObject({ mode: 'strict', target: 'db-strict' });
    expect(r.stdout).not.toContain('after-42');
    expect(r.stderr).toMatch(/recording failed .*session ended \(recording mode strict\)/);
  }, 60_000);

  it('postgres, best-effort: every statement runs, and the gap is marked', async () => {
    const r = await run('psql', [`host=127.0.0.1 port=${ports.pg} dbname=db-best user=${PG_ROLE}`, '-At'], { PGPASSWORD: dana }, bigSql);
    expect(r.stdout).toContain('after-42');
    const id = await recordingOf('db-best');
    const gap = (await auditEntries()).find((e) => e.type === 'recording.gap' && e.recording === id);
    expect(gap).toMatchObject({ mode: 'best-effort', target: 'db-best' });
    const meta = await waitFor(async () => {
      const m = await catalogOf(id);
      return m.status !== 'live' ? m : undefined;
    });
    expect(String(meta.endReason)).toMatch(/went on unrecorded/);
    // Nothing else was lost: the proxy kept serving, and its own files are intact.
    expect((await readdir(join(dir, 'data', 'recordings'))).length).toBeGreaterThanOrEqual(8);
    expect(proxy.proc.exitCode).toBeNull();
  }, 60_000);
});
