import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { PostgresTarget } from '../../config/config.types.js';

/**
 * Upstream login methods and TLS modes. The machine's PostgreSQL trusts 127.0.0.1, so this
 * starts a private cluster (initdb as user postgres, fsync off) whose pg_hba asks for
 * SCRAM-SHA-256, MD5 or a cleartext password, and whose TLS certificate the proxy verifies.
 */

const exec = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';
let dir: string;
let port: number;
let cp: TestControlPlane;
let broker: Listener;

const asPostgres = (cmd: string, args: string[]) => exec('runuser', ['-u', 'postgres', '--', join(BIN, cmd), ...args], { timeout: 30_000 });
const sql = (q: string) => asPostgres('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-Atc', q]);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const target = (name: string, tls: PostgresTarget['tls'], host = '127.0.0.1'): PostgresTarget => ({
  name, protocol: 'postgres', host, port, database: 'postgres', tls, caFile: tls === 'verify-full' ? join(dir, 'server.crt') : undefined,
  logins: { pgw_scram: { secret: 'scram' }, pgw_md5: { secret: 'md5' }, pgw_pw: { secret: 'pw' }, pgw_wrong: { secret: 'wrong' } },
  defaultAction: 'allow',
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgw-cluster-'));
  await chmod(dir, 0o700);
  await chown(dir, 101, 104).catch(async () => {
    const { stdout } = await exec('id', ['-u', 'postgres']);
    await chown(dir, Number(stdout), Number(stdout));
  });
  port = await freePort();
  await asPostgres('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '--auth-local=trust', '--auth-host=reject', '--no-sync', '-E', 'UTF8']);
  await exec('runuser', ['-u', 'postgres', '--', 'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.crt'), '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost']);
  await appendFile(join(dir, 'data', 'postgresql.conf'), `
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${dir}'
ssl = on
ssl_cert_file = '${join(dir, 'server.crt')}'
ssl_key_file = '${join(dir, 'server.key')}'
fsync = off
shared_buffers = 16MB
max_connections = 40
`);
  await writeFile(join(dir, 'data', 'pg_hba.conf'), `
local all all trust
host all pgw_scram 127.0.0.1/32 scram-sha-256
host all pgw_wrong 127.0.0.1/32 scram-sha-256
host all pgw_md5 127.0.0.1/32 md5
host all pgw_pw 127.0.0.1/32 password
`);
  await exec('chown', ['-R', 'postgres:postgres', dir]);
  await asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
  await sql(`SET password_encryption='scram-sha-256'; CREATE ROLE pgw_scram LOGIN PASSWORD 's3cret-scram'; CREATE ROLE pgw_wrong LOGIN PASSWORD 'right-one'; CREATE ROLE pgw_pw LOGIN PASSWORD 'plain-pw'; SET password_encryption='md5'; CREATE ROLE pgw_md5 LOGIN PASSWORD 'md5-pw';`);
  cp = await startControlPlane({ targets: [target('plain', 'disable'), target('pref', 'prefer'), target('req', 'require'), target('vf', 'verify-full', 'localhost'), target('vfbad', 'verify-full', '127.0.0.1')] });
  await cp.setSecret('scram', 's3cret-scram');
  await cp.setSecret('md5', 'md5-pw');
  await cp.setSecret('pw', 'plain-pw');
  await cp.setSecret('wrong', 'not-the-password');
  broker = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  if (dir) {
    await asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop']).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
});

async function through(targetName: string, login: string): Promise<{ user: string; ssl: boolean; method: string | null }> {
  await cp.grant('dana', targetName, login);
  const c = new pg.Client({ host: '127.0.0.1', port: broker.port, user: login, database: targetName, password: await cp.token('dana'), ssl: { rejectUnauthorized: false } });
  await c.connect();
  try {
    const r = await c.query('select current_user as user, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as ssl');
    return { ...r.rows[0], method: null };
  } finally {
    await c.end();
  }
}

describe('upstream login', () => {
  it('SCRAM-SHA-256 (twice: the second uses the cached salted password)', async () => {
    expect(await through('plain', 'pgw_scram')).toMatchObject({ user: 'pgw_scram', ssl: false });
    expect(await through('plain', 'pgw_scram')).toMatchObject({ user: 'pgw_scram', ssl: false });
  });

  it('MD5 and cleartext password', async () => {
    expect(await through('plain', 'pgw_md5')).toMatchObject({ user: 'pgw_md5' });
    expect(await through('plain', 'pgw_pw')).toMatchObject({ user: 'pgw_pw' });
  });

  it('TLS to the target: prefer, require and verify-full use TLS', async () => {
    expect(await through('pref', 'pgw_scram')).toMatchObject({ ssl: true });
    expect(await through('req', 'pgw_scram')).toMatchObject({ ssl: true });
    expect(await through('vf', 'pgw_scram')).toMatchObject({ ssl: true });
  });

  it('verify-full refuses a certificate for another name; a wrong vaulted password is refused', async () => {
    await cp.grant('dana', 'vfbad', 'pgw_scram');
    const c = new pg.Client({ host: '127.0.0.1', port: broker.port, user: 'pgw_scram', database: 'vfbad', password: await cp.token('dana') });
    await expect(c.connect()).rejects.toMatchObject({ code: '08006', message: expect.stringMatching(/cannot connect to target "vfbad"/) });
    await cp.grant('dana', 'plain', 'pgw_wrong');
    const w = new pg.Client({ host: '127.0.0.1', port: broker.port, user: 'pgw_wrong', database: 'plain', password: await cp.token('dana') });
    await expect(w.connect()).rejects.toMatchObject({ code: '08006', message: expect.stringMatching(/password authentication failed/) });
    const audit = await cp.audit();
    expect(audit.filter((a) => a.type === 'session.failed').length).toBeGreaterThanOrEqual(2);
  });
});

describe('upstream pool over TLS and SCRAM', () => {
  it('reuses the TLS, SCRAM-authenticated connection, and never one opened with a secret since replaced', async () => {
    const config = { ...cp.deps.config, postgres: { ...cp.deps.config.postgres, upstreamPool: { size: 2, idleTimeoutMs: 60_000 } } };
    const pooled = await startPostgresBroker({ ...cp.deps, config }, { host: '127.0.0.1', port: 0 });
    const pool = pooled.pool!;
    await cp.grant('dana', 'req', 'pgw_scram');
    const open = async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: pooled.port, user: 'pgw_scram', database: 'req', password: await cp.token('dana'), ssl: { rejectUnauthorized: false } });
      await c.connect();
      const r = (await c.query('select pg_backend_pid() as pid, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl, current_user as u')).rows[0];
      await c.end();
      return r as { pid: number; ssl: boolean; u: string };
    };
    const idle = (n: number) => new Promise<void>((resolve, reject) => {
      let tries = 0;
      const check = () => (pool.idleCount === n ? resolve() : ++tries > 100 ? reject(new Error(`pool never had ${n} idle`)) : setTimeout(check, 100));
      check();
    });
    try {
      const first = await open();
      expect(first).toMatchObject({ ssl: true, u: 'pgw_scram' });
      await idle(1);
      const again = await open();
      expect(again).toEqual(first); // the same TLS backend, reset and reused
      expect(pool.counts).toMatchObject({ logins: 1, reused: 1 });
      await idle(1);
      // The secret is rotated: the idle connection logged in with the old one is not handed out.
      await sql("ALTER ROLE pgw_scram PASSWORD 's3cret-scram-2'");
      await cp.setSecret('scram', 's3cret-scram-2');
      const rotated = await open();
      expect(rotated.pid).not.toBe(first.pid);
      expect(pool.counts.logins).toBe(2);
    } finally {
      await sql("ALTER ROLE pgw_scram PASSWORD 's3cret-scram'");
      await cp.setSecret('scram', 's3cret-scram');
      await pooled.close();
    }
  });
});
