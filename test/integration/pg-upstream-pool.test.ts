import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startControlPlane, testConfig, type TestControlPlane } from '../helpers/control-plane.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { UpstreamPool } from '../../proxy/postgres/upstream-pool.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';

/**
 * `postgres.upstream_pool` at the machine's PostgreSQL: a target connection serves the next
 * session of the same login only after DISCARD ALL, and nothing of session A (temporary table,
 * SET, SET ROLE, prepared statement, advisory lock, LISTEN) is visible to session B on the same
 * backend; connections in a transaction or a failed one, of another login, or killed while idle
 * are never handed out. Each session keeps its own recording and audit entries.
 */

const LOGIN = `pool_a_${process.pid}`;
const LOGIN2 = `pool_b_${process.pid}`;
const OTHER_ROLE = `pool_r_${process.pid}`;
const targets: Target[] = [
  { name: 'pooldb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'postgres', tls: 'disable', logins: { [LOGIN]: { secret: 'pool-a' }, [LOGIN2]: { secret: 'pool-b' } }, defaultAction: 'allow' },
];

let cp: TestControlPlane;
let broker: Listener & { pool?: UpstreamPool };
let pool: UpstreamPool;

const admin = (sql: string) => new Promise<string>((resolve, reject) => {
  execFile('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-Atc', sql], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout.trim())));
});

async function eventually<T>(fn: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function session(user: string, login = LOGIN): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: broker.port, user: login, database: 'pooldb', password: await cp.token(user) });
  await c.connect();
  return c;
}

/** Every catalog entry (ID.meta.json) so far. */
async function catalog(): Promise<Record<string, any>[]> {
  const dir = join(cp.dataDir, 'recordings');
  return Promise.all((await readdir(dir)).filter((n) => n.endsWith('.meta.json')).map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8'))));
}

const pidOf = async (c: pg.Client) => Number((await c.query('select pg_backend_pid() as p')).rows[0].p);
/** Ends the client; resolves once the pool holds `idle` connections again. */
async function endAndPool(c: pg.Client, idle: number): Promise<void> {
  await c.end();
  await eventually(() => pool.idleCount === idle || undefined, `${idle} idle pooled connection(s)`);
}

beforeAll(async () => {
  for (const r of [LOGIN, LOGIN2, OTHER_ROLE]) await admin(`DROP ROLE IF EXISTS ${r}`);
  await admin(`CREATE ROLE ${LOGIN} LOGIN; CREATE ROLE ${LOGIN2} LOGIN; CREATE ROLE ${OTHER_ROLE} NOLOGIN; GRANT ${OTHER_ROLE} TO ${LOGIN}`);
  cp = await startControlPlane({
    targets,
    overrides: { postgres: { ...testConfig('', '', []).postgres, upstreamPool: { size: 2, idleTimeoutMs: 60_000 } } },
  });
  await cp.setSecret('pool-a', 'unused-trust');
  await cp.setSecret('pool-b', 'unused-trust');
  broker = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  pool = broker.pool!;
  for (const u of ['alice', 'bob']) await cp.grant(u, 'pooldb', LOGIN);
  await cp.grant('alice', 'pooldb', LOGIN2);
});

afterAll(async () => {
  await broker?.close();
  await cp?.close();
  const left = await admin(`SELECT pid FROM pg_stat_activity WHERE usename IN ('${LOGIN}', '${LOGIN2}')`).catch(() => '');
  for (const pid of left.split('\n').filter(Boolean)) await admin(`SELECT pg_terminate_backend(${Number(pid)})`).catch(() => undefined);
  for (const r of [LOGIN, LOGIN2, OTHER_ROLE]) await admin(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
});

describe('postgres upstream pool', () => {
  it('hands the backend of A to B only after DISCARD ALL: no temp table, SET, SET ROLE, prepared statement, advisory lock or LISTEN leaks', async () => {
    const a = await session('alice');
    const pidA = await pidOf(a);
    await a.query('create temp table secret_of_a(x int)');
    await a.query("set work_mem = '7MB'");
    await a.query(`set role ${OTHER_ROLE}`);
    await a.query('prepare stmt_of_a as select 42');
    await a.query('select pg_advisory_lock(4242)');
    await a.query('listen chan_of_a');
    // What A left is really there before it goes (the checks below would pass on a fresh backend otherwise).
    expect((await a.query('select current_user as u')).rows[0].u).toBe(OTHER_ROLE);
    expect(await admin(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = ${pidA}`)).toBe('1');
    const loginsBefore = pool.counts.logins;
    await endAndPool(a, 1);

    const b = await session('bob');
    expect(await pidOf(b)).toBe(pidA); // the same backend: the pool was used
    expect(pool.counts.logins).toBe(loginsBefore); // and no new target login was made
    const notes: unknown[] = [];
    b.on('notification', (n) => notes.push(n));
    await admin("NOTIFY chan_of_a, 'for a only'");
    const r = (await b.query(`select to_regclass('pg_temp.secret_of_a') as t, current_setting('work_mem') as wm, current_user as cu, session_user as su,
      (select count(*) from pg_prepared_statements)::int as prepared, (select count(*) from pg_listening_channels())::int as listening`)).rows[0];
    expect(r).toEqual({ t: null, wm: await admin('SHOW work_mem'), cu: LOGIN, su: LOGIN, prepared: 0, listening: 0 });
    expect(await admin(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = ${pidA}`)).toBe('0');
    await b.query('select 1'); // a round trip after the NOTIFY: it would have arrived by now
    expect(notes).toEqual([]);
    await endAndPool(b, 1);

    // Each session is its own recording and its own audit entries, under its own user.
    const metas = await eventually(async () => {
      const ended = (await catalog()).filter((m) => m.status === 'ended');
      return ended.length >= 2 ? ended : undefined;
    }, 'two sealed recordings');
    expect(metas.map((m) => m.user).sort()).toEqual(['alice', 'bob']);
    const bobLog = await readFile(join(cp.dataDir, 'recordings', `${metas.find((m) => m.user === 'bob')!.id}.jsonl`), 'utf8');
    expect(bobLog).toContain('pg_prepared_statements');
    expect(bobLog).not.toContain('create temp table'); // A's statements are in A's recording only
    const starts = (await cp.audit()).filter((e) => e.type === 'session.start' && e.target === 'pooldb');
    expect(starts.map((e) => e.actor).sort()).toEqual(['alice', 'bob']);
  });

  it('closes, never reuses, a connection left in a transaction or a failed transaction', async () => {
    for (const leave of [['begin', 'select 1'], ['begin', 'select 1/0']]) {
      const a = await session('alice');
      const pidA = await pidOf(a);
      for (const sql of leave) await a.query(sql).catch(() => undefined);
      expect((await a.query('select 1').catch((e: Error) => e)) instanceof Error).toBe(leave[1] === 'select 1/0');
      await a.end();
      await eventually(async () => (await admin(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pidA}`)) === '0' || undefined, 'the backend left in a transaction to be closed');
      const b = await session('bob');
      expect(await pidOf(b)).not.toBe(pidA);
      expect((await b.query('select 1 as one')).rows[0].one).toBe(1);
      await b.end();
    }
  });

  it('never hands a connection to another login', async () => {
    const a = await session('alice', LOGIN);
    const pidA = await pidOf(a);
    await endAndPool(a, pool.idleCount + 1);
    const reused = pool.counts.reused;
    const other = await session('alice', LOGIN2);
    expect(await pidOf(other)).not.toBe(pidA);
    expect((await other.query('select current_user as u')).rows[0].u).toBe(LOGIN2);
    expect(pool.counts.reused).toBe(reused);
    await other.end();
  });

  it('replaces a pooled connection the server killed while idle', async () => {
    const a = await session('alice');
    const pidA = await pidOf(a);
    await a.end();
    await eventually(() => pool.idleCount >= 1 || undefined, 'a pooled connection');
    // Every idle backend of the login is killed; the fault fired if the server says so.
    const pids = (await admin(`SELECT pid FROM pg_stat_activity WHERE usename IN ('${LOGIN}', '${LOGIN2}')`)).split('\n').filter(Boolean).map(Number);
    expect(pids).toContain(pidA);
    for (const pid of pids) expect(await admin(`SELECT pg_terminate_backend(${pid})`)).toBe('t');
    await eventually(() => pool.idleCount === 0 || undefined, 'the pool to drop the killed connections');
    const b = await session('bob');
    expect(await pidOf(b)).not.toBe(pidA);
    expect((await b.query('select 2 as two')).rows[0].two).toBe(2);
    await b.end();
    await eventually(() => pool.idleCount === 1 || undefined, 'the last session to be pooled');
    await eventually(async () => (await catalog()).every((m) => m.status === 'ended') || undefined, 'every recording sealed');
  });
});
