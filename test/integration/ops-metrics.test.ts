/**
 * Operations view of a real `pam serve` process: /metrics counters moving with real ssh and psql
 * sessions and refusals, /readyz following a private Redis going down and coming back, and the
 * process's stdout being JSON lines without a token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { runOpenSsh, startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { metricValue, PROCESS_ROLES, startPamProcess, type PamProcess } from '../helpers/pam-process.js';

const run = promisify(execFile);
const PG_ROLE = `pam_ops_${process.pid}`;
const PG_PASS = 'ops-Secret-1';
const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]).toString();
const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});

let sshd: TestSshd;
let proxy: PamProcess;
let redis: ChildProcess | undefined;
let redisPort: number;

async function startRedis(): Promise<void> {
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await waitFor(async () => (await run('redis-cli', ['-p', String(redisPort), 'ping']).catch(() => ({ stdout: '' }))).stdout.includes('PONG'), 'redis to start');
}

async function stopRedis(): Promise<void> {
  const r = redis!;
  redis = undefined;
  const gone = new Promise((res) => r.once('exit', res));
  r.kill('SIGKILL');
  await gone;
}

beforeAll(async () => {
  sshd = await startSshd();
  psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}; SET password_encryption='scram-sha-256'; CREATE ROLE ${PG_ROLE} LOGIN PASSWORD '${PG_PASS}'`);
  redisPort = await freePort();
  await startRedis();
  proxy = await startPamProcess({
    roles: PROCESS_ROLES,
    metrics: true,
    store: `redis://127.0.0.1:${redisPort}`,
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
    logins: { ${PG_ROLE}: { secret: appdb-ops } }
`,
  });
  expect((await proxy.pam(['secret', 'set', 'appdb-ops'], {}, PG_PASS)).code).toBe(0);
  expect((await proxy.pam(['secret', 'set', 'web1-root'], {}, sshd.userKey)).code).toBe(0);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  if (redis) await stopRedis();
  await sshd?.close();
  try { psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}`); } catch { /* still connected */ }
});

describe('pam serve operations endpoints', () => {
  it('moves the session, refusal and token counters with real ssh and psql traffic; labels hold no user text', async () => {
    const before = (await proxy.ops('/metrics')).body;
    const dana = await proxy.token('dana', 'dba');
    const eve = await proxy.token('eve', 'dba');
    await proxy.grant('dana', 'web1', 'root');
    await proxy.grant('dana', 'appdb', PG_ROLE);

    const psql = (password: string, sql: string) =>
      run('psql', [`host=127.0.0.1 port=${proxy.ports.pg} dbname=appdb user=${PG_ROLE} sslmode=disable`, '-Atc', sql], { env: { ...process.env, PGPASSWORD: password } });
    expect((await psql(dana, 'select 6*7')).stdout.trim()).toBe('42');
    expect((await runOpenSsh('ssh', dana, ['-p', String(proxy.ports.ssh), '-l', 'root@web1', '127.0.0.1', 'echo ops-$((6*7))'])).stdout.trim()).toBe('ops-42');
    // Refusals: no grant (eve), a bad token, and a made-up target whose name must not become a label.
    expect(String((await psql(eve, 'select 1').catch((e) => e)).stderr)).toMatch(/no active grant/);
    expect(String((await psql('not-a-token', 'select 1').catch((e) => e)).stderr)).toMatch(/IAM token rejected/);
    const typed = 'zz-typed-by-user-9f3';
    expect((await runOpenSsh('ssh', dana, ['-p', String(proxy.ports.ssh), '-l', `root@${typed}`, '127.0.0.1', 'true'])).code).not.toBe(0);

    const after = await waitFor(async () => {
      const m = (await proxy.ops('/metrics')).body;
      return metricValue(m, 'pam_sessions_ended_total', { protocol: 'ssh', outcome: 'normal' }) > metricValue(before, 'pam_sessions_ended_total', { protocol: 'ssh', outcome: 'normal' })
        && metricValue(m, 'pam_sessions_ended_total', { protocol: 'postgres', outcome: 'normal' }) > metricValue(before, 'pam_sessions_ended_total', { protocol: 'postgres', outcome: 'normal' }) ? m : undefined;
    }, 'session ends to be counted');
    const moved = (name: string, labels: Record<string, string>) => metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(moved('pam_sessions_started_total', { protocol: 'ssh', target: 'web1' })).toBe(1);
    expect(moved('pam_sessions_started_total', { protocol: 'postgres', target: 'appdb' })).toBe(1);
    expect(moved('pam_sessions_ended_total', { protocol: 'ssh', outcome: 'normal' })).toBe(1);
    expect(moved('pam_sessions_ended_total', { protocol: 'postgres', outcome: 'normal' })).toBe(1);
    expect(moved('pam_session_refusals_total', { protocol: 'postgres', reason: 'no_grant' })).toBe(1);
    expect(moved('pam_session_refusals_total', { protocol: 'postgres', reason: 'token' })).toBe(1);
    expect(moved('pam_session_refusals_total', { protocol: 'ssh', reason: 'unknown_target' })).toBe(1);
    expect(moved('pam_token_verification_failures_total', { via: 'postgres', reason: 'malformed_token' })).toBe(1);
    // `select 6*7` answered (allow); bytes both ways through Postgres, the exec's output back over SSH
    // (its stdin was empty).
    expect(moved('pam_sql_statements_total', { action: 'allow' })).toBe(1);
    expect(moved('pam_relayed_bytes_total', { protocol: 'postgres', direction: 'client_to_target' })).toBeGreaterThan('select 6*7'.length);
    expect(moved('pam_relayed_bytes_total', { protocol: 'postgres', direction: 'target_to_client' })).toBeGreaterThan(0);
    expect(moved('pam_relayed_bytes_total', { protocol: 'ssh', direction: 'target_to_client' })).toBeGreaterThanOrEqual('ops-42\n'.length);
    expect(metricValue(after, 'pam_sessions_live', { protocol: 'ssh', target: 'web1' })).toBe(0);
    expect(metricValue(after, 'pam_store_up')).toBe(1);
    expect(metricValue(after, 'pam_review_holds_waiting')).toBe(0);
    // The one Postgres session logged in upstream once; its connection then waits in the pool.
    expect(moved('pam_postgres_upstream_connections', { kind: 'login' })).toBe(1);
    await waitFor(async () => metricValue((await proxy.ops('/metrics')).body, 'pam_postgres_upstream_pool_idle') === 1 || undefined, 'the pooled connection');
    expect(metricValue(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(after).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    for (const s of ['pam_recording_write_backlog_bytes', 'pam_recording_write_lag_seconds', 'pam_recordings_open']) expect(after).toMatch(new RegExp(`^${s} \\d`, 'm'));
    // Nothing a user typed or sent reaches a label.
    expect(after).not.toContain(typed);
    expect(after).not.toContain('not-a-token');
    expect(after).not.toContain(dana);
  }, 120_000);

  it('answers /healthz always and /readyz 503 naming the store while Redis is down, 200 after it returns', async () => {
    expect((await proxy.ops('/healthz')).status).toBe(200);
    expect((await proxy.ops('/readyz')).status).toBe(200);
    await stopRedis();
    expect((await run('redis-cli', ['-p', String(redisPort), 'ping']).catch((e) => e)).code).not.toBe(0);
    const down = await waitFor(async () => {
      const r = await proxy.ops('/readyz');
      return r.status === 503 ? r : undefined;
    }, 'readyz to fail');
    const body = JSON.parse(down.body);
    expect(body.failing).toEqual(['store']);
    expect(body.checks.find((c: { name: string }) => c.name === 'store').error).toMatch(/store unreachable/);
    expect((await proxy.ops('/healthz')).status).toBe(200);
    expect(metricValue((await proxy.ops('/metrics')).body, 'pam_store_up')).toBe(0);
    // Let ioredis retry for a while: the log must not grow a line per retry.
    await new Promise((r) => setTimeout(r, 3000));
    await startRedis();
    await waitFor(async () => (await proxy.ops('/readyz')).status === 200, 'readyz to recover', 800);
    expect(metricValue((await proxy.ops('/metrics')).body, 'pam_store_up')).toBe(1);
    await waitFor(() => proxy.stdout().includes('state store available again'), 'the recovery line');
    const storeLines = proxy.stdout().split('\n').filter((l) => l.includes('"component":"store"'));
    expect(storeLines.map((l) => JSON.parse(l).msg)).toEqual(['state store unavailable', 'state store available again']);
  }, 60_000);

  it('writes only JSON lines to stdout, none holding a token', async () => {
    const dana = await proxy.token('dana', 'dba');
    const lines = proxy.stdout().split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(2);
    for (const l of lines) {
      const o = JSON.parse(l);
      expect(o).toMatchObject({ level: expect.any(String), time: expect.any(String), msg: expect.any(String) });
    }
    expect(proxy.stdout()).not.toMatch(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./);
    expect(proxy.stdout()).not.toContain(dana.split('.')[1]);
    expect(proxy.stdout()).not.toContain(PG_PASS);
    // Nothing went around the logger: stderr stayed empty through sessions, refusals and the outage.
    // (bin/pam.js's own notice, when a stale dist/ exists in this checkout, is not the proxy's.)
    expect(proxy.stderr().replace(/^pam: sources changed since `npm run build`.*\n/m, '')).toBe('');
  });
});
