/**
 * The README's first-run story as a user would live it: `pam serve` from a YAML file in its own
 * process, the `pam` CLI for tokens, secrets (while the proxy runs), requests and approvals,
 * then stock `psql` and `ssh` through the proxy to the real PostgreSQL and sshd, then the
 * auditor's recordings and audit commands.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, execFileSync } from 'node:child_process';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OPENSSH_OPTS, runOpenSsh, startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';

const run = promisify(execFile);
const PG_ROLE = `pam_flow_${process.pid}`;
const PG_PASS = 'flow-Secret-1';

const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]).toString();

let sshd: TestSshd;
let proxy: PamProcess;
let dir: string;
let ports: PamProcess['ports'];
let configFile: string;
const pam = (args: string[], env: Record<string, string> = {}, input?: string) => proxy.pam(args, env, input);

beforeAll(async () => {
  sshd = await startSshd();
  psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}; SET password_encryption='scram-sha-256'; CREATE ROLE ${PG_ROLE} LOGIN PASSWORD '${PG_PASS}'`);
  proxy = await startPamProcess({
    roles: `roles:
  - name: dba
    groups: [dba]
    can_request:
      - { targets: [appdb, web1], logins: ["*"], max_duration: 1h }
  - name: security
    groups: [security]
    can_approve: [dba]
    can_audit: true
`,
    extra: `targets:
  - name: web1
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web1-root } }
  - name: appdb
    protocol: postgres
    address: "127.0.0.1:5432"
    database: postgres
    tls: disable
    logins: { ${PG_ROLE}: { secret: appdb-flow } }`,
  });
  ({ dir, ports, configFile } = proxy);
});

afterAll(async () => {
  await proxy?.stop();
  await sshd?.close();
  try { psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}`); } catch { /* still connected */ }
});

describe('operator flow', () => {
  it('runs the README flow end to end with the real CLI, psql and ssh', async () => {
    const dana = (await pam(['dev', 'token', 'dana', '--groups', 'dba'])).stdout.trim();
    const sam = (await pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
    expect(dana.split('.')).toHaveLength(3);

    // Secrets go in while the proxy runs; the listing shows names and rotation status, never values.
    expect((await pam(['secret', 'set', 'appdb-flow'], {}, PG_PASS + '\n')).code).toBe(0);
    expect((await pam(['secret', 'set', 'web1-root'], {}, sshd.userKey)).code).toBe(0);
    const listed = await pam(['secret', 'list', '--json']);
    expect(JSON.parse(listed.stdout).map((s: { name: string; usedBy: string[] }) => [s.name, s.usedBy])).toEqual([['appdb-flow', [`${PG_ROLE}@appdb`]], ['web1-root', ['root@web1']]]);
    expect(listed.stdout).not.toContain(PG_PASS);

    // No grant yet: psql is refused with what to run.
    const refused = await run('psql', [`host=127.0.0.1 port=${ports.pg} dbname=appdb user=${PG_ROLE}`, '-c', 'select 1'], { env: { ...process.env, PGPASSWORD: dana } }).catch((e) => e);
    expect(refused.stderr).toMatch(/pam request --target appdb/);

    for (const target of ['appdb', 'web1']) {
      const login = target === 'appdb' ? PG_ROLE : 'root';
      const req = await pam(['request', '--target', target, '--login', login, '--duration', '30m', '--reason', 'INC-7', '--json'], { PAM_TOKEN: dana });
      expect(req.code).toBe(0);
      expect((await pam(['approve', JSON.parse(req.stdout).id], { PAM_TOKEN: sam })).code).toBe(0);
    }

    const { stdout } = await run('psql', [`host=127.0.0.1 port=${ports.pg} dbname=appdb user=${PG_ROLE}`, '-Atc', "select 'flow-' || 40 + 2"], { env: { ...process.env, PGPASSWORD: dana } });
    expect(stdout.trim()).toBe('flow-42');
    const ssh = await runOpenSsh('ssh', dana, ['-p', String(ports.ssh), '-l', 'root@web1', '127.0.0.1', 'echo ssh-$((6*7))']);
    expect(ssh.stdout.trim()).toBe('ssh-42');

    // The auditor's view.
    const recs = await waitFor(async () => {
      const r = JSON.parse((await pam(['recordings', 'list', '--json'], { PAM_TOKEN: sam })).stdout) as { id: string; protocol: string; status: string; user: string }[];
      return r.filter((x) => x.status === 'ended').length >= 2 ? r : undefined;
    }, 'both recordings to end');
    expect(recs.map((r) => r.protocol).sort()).toEqual(['postgres', 'ssh']);
    expect(recs.every((r) => r.user === 'dana')).toBe(true);
    const pg = recs.find((r) => r.protocol === 'postgres')!;
    const sh = recs.find((r) => r.protocol === 'ssh')!;
    expect((await pam(['recordings', 'export', pg.id, '--format', 'text'], { PAM_TOKEN: sam })).stdout).toContain("select 'flow-' || 40 + 2");
    expect((await pam(['recordings', 'export', sh.id, '--format', 'text'], { PAM_TOKEN: sam })).stdout).toContain('ssh-42');
    const cast = (await pam(['recordings', 'export', sh.id, '--format', 'asciicast'], { PAM_TOKEN: sam })).stdout;
    expect(JSON.parse(cast.split('\n')[0]!)).toMatchObject({ version: 2 });
    expect((await pam(['recordings', 'verify', sh.id], { PAM_TOKEN: sam })).stdout).toMatch(/intact/);
    expect((await pam(['recordings', 'list'], { PAM_TOKEN: dana })).code).toBe(3);

    const audit = JSON.parse((await pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string }[];
    expect(audit.map((e) => e.type)).toEqual(expect.arrayContaining(['config.loaded', 'secret.set', 'session.refused', 'request', 'grant', 'recording.export']));
    expect((await pam(['audit', 'verify'], { PAM_TOKEN: sam })).stdout).toMatch(/intact/);
    const rawAudit = await readFile(join(dir, 'data', 'audit.log'), 'utf8');
    expect(rawAudit).not.toContain(dana);
    expect(rawAudit).not.toContain(PG_PASS);
    expect(proxy.log()).not.toContain(dana);
  }, 240_000);

  it('relays a 1 GiB download with backpressure: the proxy process never holds 256 MB resident', async () => {
    // Uses the grant for root@web1 from the test above (tests in a file run in order).
    const dana = (await pam(['dev', 'token', 'dana', '--groups', 'dba'])).stdout.trim();
    const sam = (await pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
    const GiB = 1024 ** 3;
    // The target makes the bytes as fast as it can; the client reads slower (it stops for 60 ms
    // after each 8 MiB), so without backpressure the difference would pile up in the proxy.
    const p = spawn('sshpass', ['-P', 'IAM token', '-e', 'ssh', ...OPENSSH_OPTS, '-p', String(ports.ssh), '-l', 'root@web1', '127.0.0.1',
      `yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c ${GiB}`], { env: { ...process.env, SSHPASS: dana }, stdio: ['ignore', 'pipe', 'ignore'] });
    let received = 0;
    let step = 0;
    p.stdout.on('data', (d: Buffer) => {
      received += d.length;
      if (Math.floor(received / (8 << 20)) === step) return;
      step = Math.floor(received / (8 << 20));
      p.stdout.pause();
      setTimeout(() => p.stdout.resume(), 60);
    });
    expect(await new Promise((r) => p.once('close', r))).toBe(0);
    expect(received).toBe(GiB);
    // Peak resident set of the `pam serve` process over its whole life, from the kernel.
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${proxy.proc.pid}/status`, 'utf8'))![1]) * 1024;
    expect(hwm).toBeGreaterThan(0);
    console.log(`pam serve peak RSS after 1 GiB: ${(hwm / 1048576).toFixed(0)} MB`);
    // The budget was 200 MB before the search index: its worker thread (own V8 heap, SQLite)
    // follows this recording live and adds 35-50 MB here. Without the relay's pause the same
    // download peaks above 1 GB, so 256 MB still fails on any loss of backpressure.
    expect(hwm).toBeLessThan(256 * 1024 * 1024);
    // And every byte of it is in the recording: an exec without a pty is recorded raw (the exact
    // bytes in frames of up to 64 KiB with a 14-byte header), so within 1.1x of what was carried.
    const recs = await waitFor(async () => {
      const r = JSON.parse((await pam(['recordings', 'list', '--json'], { PAM_TOKEN: sam })).stdout) as { bytes: number; status: string; format: string }[];
      return r.find((x) => x.status === 'ended' && x.bytes > GiB);
    }, 'the 1 GiB recording to end');
    expect(recs.format).toBe('raw');
    expect(recs.bytes).toBeGreaterThan(GiB);
    expect(recs.bytes).toBeLessThan(GiB * 1.1);
  }, 240_000);

  it('refuses a bad config with the key and a non-zero exit', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, (await readFile(configFile, 'utf8')).replace('store: "embedded"', 'store: "mysql://x"'));
    const r = await pam(['serve', '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config: store: must be "embedded" or a redis:\/\/ URL/);
  });
});
