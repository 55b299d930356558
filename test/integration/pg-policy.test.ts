import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';
import type { Hold } from '../../access/holds.js';

/**
 * SQL policy bypass corpus, through the proxy with the control plane's real policy engine (rules
 * read from policies_dir), each case checked at the real target: the table that must still be
 * there, the row that must not have changed, the file that must not exist.
 */

const DB = `pgp_it_${process.pid}`;
const ROLE = `pgp_dba_${process.pid}`;
const login = { [ROLE]: { secret: 'pgp-dba' } };
const targets: Target[] = [
  { name: 'poldb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: DB, tls: 'disable', logins: login, defaultAction: 'allow' },
  // The same database under a target name no rule names: only the defaults apply there.
  { name: 'loosedb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: DB, tls: 'disable', logins: login, defaultAction: 'allow' },
];

const RULES_YAML = `command_rules:
  - name: no-drop
    protocol: postgres
    targets: [poldb]
    match: { statements: [DropStmt, TruncateStmt] }
    action: deny
    message: "DROP and TRUNCATE are blocked."
  - name: no-delete
    protocol: postgres
    targets: [poldb]
    match: { statements: [DeleteStmt] }
    action: deny
  - name: no-file-functions
    protocol: postgres
    targets: [poldb]
    match: { functions: [pg_read_file, pg_read_binary_file, lo_export] }
    action: deny
  - name: no-copy-program
    protocol: postgres
    targets: [poldb]
    match: { copy_program: true }
    action: deny
  - name: no-secrets
    protocol: postgres
    targets: [poldb]
    match: { relations: ["*.secrets"] }
    action: deny
  - name: updates-need-approval
    protocol: postgres
    targets: [poldb]
    match: { statements: [UpdateStmt] }
    action: review
    message: "UPDATE needs a second pair of eyes."
`;
const RELOAD_RULE = `  - name: reloadme-now-denied
    protocol: postgres
    targets: [poldb]
    match: { relations: [reloadme] }
    action: deny
`;

let cp: TestControlPlane;
let broker: Listener;
let quick: Listener;
let token: string;

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const admin = (db: string, sql: string) => run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-Atc', sql]);
/** What the target holds, asked directly (not through the proxy). */
const atTarget = async (sql: string) => (await admin(DB, sql)).stdout.trim();
const conninfo = (port: number, target = 'poldb') => `host=127.0.0.1 port=${port} user=${ROLE} dbname=${target} sslmode=disable`;

function client(port = broker.port, target = 'poldb'): pg.Client {
  const c = new pg.Client({ host: '127.0.0.1', port, user: ROLE, database: target, password: token });
  c.on('error', () => {});
  return c;
}

async function eventually<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 6000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function recorded(): Promise<Record<string, any>[]> {
  const dir = join(cp.dataDir, 'recordings');
  const out: Record<string, any>[] = [];
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) if (line) out.push(JSON.parse(line));
  }
  return out;
}

const approver = async () => cp.deps.identity.verify(await cp.token('approver-bot', ['approvers']));
async function pendingHold(text: RegExp): Promise<Hold> {
  const who = await approver();
  return eventually(async () => (await cp.deps.holds.list(who)).find((h) => h.status === 'pending' && text.test(h.text)), `hold for ${text}`);
}

/** Rewrites the rule file atomically (write beside, rename), as the docs ask. */
async function writeRules(yaml: string): Promise<void> {
  const file = join(cp.config.policiesDir, 'extra.yaml');
  await writeFile(`${file}.tmp`, yaml);
  await rename(`${file}.tmp`, file);
}

beforeAll(async () => {
  await admin('postgres', `DROP DATABASE IF EXISTS ${DB}`);
  await admin('postgres', `DROP ROLE IF EXISTS ${ROLE}`);
  await admin('postgres', `SET password_encryption='scram-sha-256'; CREATE ROLE ${ROLE} LOGIN SUPERUSER PASSWORD 'pgp-secret-1'`);
  await admin('postgres', `CREATE DATABASE ${DB} OWNER ${ROLE}`);
  await admin(DB, `SET ROLE ${ROLE};
    CREATE TABLE keep(id int primary key, v text); INSERT INTO keep VALUES (1, 'a'), (2, 'b'), (3, 'c');
    CREATE TABLE items(id int primary key, v text); INSERT INTO items VALUES (1, 'orig'), (2, 'orig'), (3, 'orig'), (4, 'orig'), (5, 'orig');
    CREATE TABLE log(id int);
    CREATE TABLE reloadme(id int); INSERT INTO reloadme VALUES (1);
    CREATE TABLE secrets(id int); CREATE SCHEMA vault; CREATE TABLE vault.secrets(id int, s text); INSERT INTO vault.secrets VALUES (1, 'hunter2');
    CREATE TABLE gap_do(id int); CREATE TABLE gap_fn_t(id int);`);
  cp = await startControlPlane({ targets, roles: RULES_YAML });
  await cp.setSecret('pgp-dba', 'pgp-secret-1');
  broker = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 }, { reviewTimeoutMs: 60_000 });
  quick = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 }, { reviewTimeoutMs: 800 });
  await cp.grant('alice', 'poldb', ROLE);
  await cp.grant('alice', 'loosedb', ROLE);
  token = await cp.token('alice');
}, 60_000);

afterAll(async () => {
  await broker?.close();
  await quick?.close();
  await cp?.close();
  await admin('postgres', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin('postgres', `DROP ROLE IF EXISTS ${ROLE}`);
});

describe('SQL policy at the real target: stopped', () => {
  it('DROP and TRUNCATE are denied with 42501 and the rule message; the table and its rows stay', async () => {
    const c = client();
    await c.connect();
    await expect(c.query('drop table keep')).rejects.toMatchObject({ code: '42501', message: 'DROP and TRUNCATE are blocked.', detail: 'policy rule: no-drop' });
    await expect(c.query('TRUNCATE keep')).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('drop table if exists keep cascade')).rejects.toMatchObject({ code: '42501' });
    expect((await c.query('select count(*)::int as n from keep')).rows).toEqual([{ n: 3 }]);
    await c.end();
    expect(await atTarget('select count(*) from keep')).toBe('3');
    const ev = await eventually(async () => (await recorded()).find((e) => e.type === 'statement' && e.sql === 'drop table keep'), 'recorded denial');
    expect(ev).toMatchObject({ verdict: { action: 'deny', rule: 'no-drop' }, error: { sqlstate: '42501' } });
  });

  it('DML hidden in a CTE is denied', async () => {
    const c = client();
    await c.connect();
    await expect(c.query('WITH x AS (DELETE FROM keep RETURNING *) SELECT * FROM x')).rejects.toMatchObject({ code: '42501', detail: 'policy rule: no-delete' });
    await expect(c.query('select * from (select 1) s where exists (select 1 from keep) and false; with y as (delete from keep where id = 1 returning 1) select 1')).rejects.toMatchObject({ code: '42501' });
    await c.end();
    expect(await atTarget('select count(*) from keep')).toBe('3');
  });

  it('a multi-statement string with one denied statement is denied as a whole: nothing of it runs', async () => {
    const c = client();
    await c.connect();
    await expect(c.query('insert into log values (1); select 1; drop table keep')).rejects.toMatchObject({ code: '42501' });
    expect((await c.query('select 2 as ok')).rows).toEqual([{ ok: 2 }]);
    await c.end();
    expect(await atTarget('select count(*) from log where id = 1')).toBe('0');
    expect(await atTarget("select to_regclass('keep') is not null")).toBe('t');
  });

  it('extended protocol (parameterized and named prepared statements) is judged at Parse', async () => {
    const c = client();
    await c.connect();
    await expect(c.query({ text: 'delete from keep where id = $1', values: [1] })).rejects.toMatchObject({ code: '42501' });
    await expect(c.query({ name: 'dropper', text: 'drop table keep' })).rejects.toMatchObject({ code: '42501' });
    // The statement was never prepared upstream: executing the name again is denied again, not run.
    await expect(c.query({ name: 'dropper', text: 'drop table keep' })).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('prepare later as delete from keep where id = 2')).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('execute later')).rejects.toMatchObject({ code: '26000' }); // never prepared
    expect((await c.query({ text: 'select $1::int as v', values: [7] })).rows).toEqual([{ v: 7 }]);
    await c.end();
    expect(await atTarget('select count(*) from keep')).toBe('3');
  });

  it('a denial inside a transaction aborts it on both sides: 25P02 next, ROLLBACK works, nothing committed', async () => {
    const c = client();
    await c.connect();
    await c.query('begin');
    await c.query('insert into log values (2)');
    await expect(c.query('drop table keep')).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback');
    expect((await c.query('select 3 as ok')).rows).toEqual([{ ok: 3 }]);
    // Extended protocol inside a block: same agreement.
    await c.query('begin');
    await expect(c.query({ text: 'delete from keep where id = $1', values: [3] })).rejects.toMatchObject({ code: '42501' });
    await expect(c.query({ text: 'select $1::int', values: [1] })).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback');
    await c.end();
    expect(await atTarget('select count(*) from log where id = 2')).toBe('0');
    expect(await atTarget('select count(*) from keep')).toBe('3');
  });

  it('functions are found in subqueries, qualified or not', async () => {
    const c = client();
    await c.connect();
    for (const sql of [
      "select * from (select pg_read_file('/etc/hostname')) s",
      "select (select pg_catalog.pg_read_file('/etc/hostname'))",
      "select 1 where exists (select pg_read_binary_file('/etc/hostname'))",
      "select id from keep where v = (select lo_export(0, '/tmp/x')::text)",
    ]) await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501', detail: 'policy rule: no-file-functions' });
    await c.end();
  });

  it('COPY … PROGRAM is denied and the program never runs', async () => {
    const marker = join(cp.dataDir, 'copy-program-ran');
    const c = client();
    await c.connect();
    await expect(c.query(`copy keep to program 'touch ${marker}'`)).rejects.toMatchObject({ code: '42501', detail: 'policy rule: no-copy-program' });
    await expect(c.query(`copy (select 1) to program 'touch ${marker}'`)).rejects.toMatchObject({ code: '42501' });
    await c.end();
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(marker)).toBe(false);
  });

  it('unparseable SQL is denied by the proxy (42501), not left to the server', async () => {
    const c = client();
    await c.connect();
    await expect(c.query('selec 1')).rejects.toMatchObject({ code: '42501', detail: 'policy rule: unparseable-sql' });
    await expect(c.query('select 1; drop table keep; selec')).rejects.toMatchObject({ code: '42501' });
    await c.end();
    expect(await atTarget("select to_regclass('keep') is not null")).toBe('t');
  });

  it('relation globs (*.secrets) match any schema, in joins and subqueries', async () => {
    const c = client();
    await c.connect();
    for (const sql of ['select * from vault.secrets', 'select * from secrets', 'select k.id from keep k join vault.secrets s on s.id = k.id', 'select (select s from VAULT.SECRETS limit 1)', 'select * from keep where id in (select id from "vault"."secrets")']) {
      await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501', detail: 'policy rule: no-secrets' });
    }
    expect((await c.query('select count(*)::int as n from keep')).rows).toEqual([{ n: 3 }]);
    await c.end();
  });
});

describe('SQL policy: review holds', () => {
  it('approved: the client is told how to get it approved, nothing runs before, it runs after', async () => {
    const c = client();
    await c.connect();
    const notice = new Promise<any>((r) => c.once('notice', r));
    const q = c.query("update items set v = 'approved' where id = 1");
    const n = await notice;
    expect(n.message).toMatch(/^waiting for approval: pam approve-command hold_[0-9a-f]{16} \(UPDATE needs a second pair of eyes\.\)$/);
    const id = /hold_[0-9a-f]{16}/.exec(n.message)![0];
    await new Promise((r) => setTimeout(r, 200));
    expect(await atTarget('select v from items where id = 1')).toBe('orig');
    await cp.deps.holds.decide(await approver(), id, true, 'looks fine');
    expect((await q).rowCount).toBe(1);
    expect(await atTarget('select v from items where id = 1')).toBe('approved');
    // Extended protocol: the Parse and the rest of its batch wait for the decision.
    const notice2 = new Promise<any>((r) => c.once('notice', r));
    const q2 = c.query({ text: 'update items set v = $1 where id = $2', values: ['ext-approved', 2] });
    const id2 = /hold_[0-9a-f]{16}/.exec((await notice2).message)![0];
    expect(await atTarget('select v from items where id = 2')).toBe('orig');
    await cp.deps.holds.decide(await approver(), id2, true);
    expect((await q2).rowCount).toBe(1);
    expect((await c.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await c.end();
    expect(await atTarget('select v from items where id = 2')).toBe('ext-approved');
    const ev = await eventually(async () => (await recorded()).find((e) => e.type === 'statement' && e.sql === "update items set v = 'approved' where id = 1"), 'recorded review');
    expect(ev).toMatchObject({ tag: 'UPDATE 1', verdict: { action: 'review', rule: 'updates-need-approval', hold: id, decision: 'approved' } });
    const audit = await cp.audit();
    expect(audit.some((a) => a.type === 'policy.hold' && a.hold === id)).toBe(true);
    expect(audit.some((a) => a.type === 'policy.hold.approve' && a.hold === id)).toBe(true);
  });

  it('denied (psql sees the notice and a 42501); the session goes on, the row is unchanged', async () => {
    const child = spawn('psql', [conninfo(broker.port), '-X', '-v', 'ON_ERROR_STOP=0', '-c', "update items set v = 'denied' where id = 3", '-c', "select 'after-' || 1"], { env: { ...process.env, PGPASSWORD: token } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const closed = new Promise((r) => child.on('close', r));
    const hold = await pendingHold(/v = 'denied'/);
    await eventually(async () => err.includes(`NOTICE:  waiting for approval: pam approve-command ${hold.id}`), 'psql notice');
    await cp.deps.holds.decide(await approver(), hold.id, false, 'not today');
    await closed;
    expect(err).toContain(`ERROR:  statement refused by an approver (${hold.id})`);
    expect(out).toContain('after-1');
    expect(await atTarget('select v from items where id = 3')).toBe('orig');
  });

  it('times out (refused), and a whole multi-statement string waits as one', async () => {
    const c = client(quick.port);
    await c.connect();
    await expect(c.query("insert into log values (5); update items set v = 'late' where id = 4")).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/no approver decided in time/) });
    expect((await c.query('select 4 as ok')).rows).toEqual([{ ok: 4 }]);
    await c.end();
    expect(await atTarget('select v from items where id = 4')).toBe('orig');
    expect(await atTarget('select count(*) from log where id = 5')).toBe('0');
  });

  it('a cancel request withdraws a held statement (57014)', async () => {
    const c = client();
    await c.connect();
    const notice = new Promise<any>((r) => c.once('notice', r));
    const q = c.query("update items set v = 'canceled' where id = 4");
    await notice;
    // A CancelRequest on a new connection, with the proxy's backend key (what psql's Ctrl-C sends).
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE((c as any).processID, 8);
    cancel.writeInt32BE((c as any).secretKey, 12);
    connect(broker.port, '127.0.0.1').on('error', () => {}).end(cancel);
    await expect(q).rejects.toMatchObject({ code: '57014' });
    expect((await c.query('select 5 as ok')).rows).toEqual([{ ok: 5 }]);
    await c.end();
    expect(await atTarget('select v from items where id = 4')).toBe('orig');
  });
});

describe('SQL policy: review holds keep the protocol in order', () => {
  it('a pipelined extended batch and a Query behind it wait for the decision, then are answered in order', async () => {
    const { serialize } = await import('pg-protocol');
    const { Parser } = await import('pg-protocol/dist/parser.js');
    const sock = connect(broker.port, '127.0.0.1');
    sock.on('error', () => {});
    const got: any[] = [];
    const parser = new Parser();
    sock.on('data', (d) => parser.parse(d, (m: any) => got.push(m)));
    const ready = (n: number) => eventually(async () => got.filter((m) => m.name === 'readyForQuery').length >= n || undefined, `ReadyForQuery #${n}`);
    sock.write(Buffer.concat([serialize.startup({ user: ROLE, database: 'poldb' }), serialize.password(token)]));
    await ready(1);
    got.length = 0;
    // One write: Parse/Bind/Execute/Sync of a statement that needs review, then a simple Query.
    sock.write(Buffer.concat([
      serialize.parse({ text: 'update items set v = $1 where id = $2' }),
      serialize.bind({ values: ['pipelined', '5'] }),
      serialize.execute(),
      serialize.sync(),
      serialize.query("select 'after-hold' as v"),
    ]));
    const notice = await eventually(async () => got.find((m) => m.name === 'notice'), 'notice');
    const id = /hold_[0-9a-f]{16}/.exec(notice.message)![0];
    await new Promise((r) => setTimeout(r, 300));
    // Nothing of the batch, nor the Query behind it, reached the server.
    expect(got.map((m) => m.name)).toEqual(['notice']);
    expect(await atTarget('select v from items where id = 5')).toBe('orig');
    await cp.deps.holds.decide(await approver(), id, true);
    await ready(2);
    expect(got.map((m) => m.name)).toEqual(['notice', 'parseComplete', 'bindComplete', 'commandComplete', 'readyForQuery', 'rowDescription', 'dataRow', 'commandComplete', 'readyForQuery']);
    expect(got[3].text).toBe('UPDATE 1');
    expect(got[6].fields.map(String)).toEqual(['after-hold']);
    sock.end(serialize.end());
    expect(await atTarget('select v from items where id = 5')).toBe('pipelined');
  });
});

describe('SQL policy: review holds and the session end', () => {
  it('a session killed while its statement waits drops the statement; the hold expires and cannot be approved', async () => {
    const c = client();
    await c.connect();
    const notice = new Promise<any>((r) => c.once('notice', r));
    const q = c.query("update items set v = 'killed' where id = 4").catch((e) => e);
    const id = /hold_[0-9a-f]{16}/.exec((await notice).message)![0];
    const port = (c as any).connection.stream.localPort;
    const live = cp.deps.sessions.list().find((s) => s.clientAddress?.endsWith(`:${port}`))!;
    expect(cp.deps.sessions.kill(live.id, 'killed while held')).toBe(true);
    expect(await q).toMatchObject({ code: '57P01', message: 'terminating connection: killed while held' });
    const who = await approver();
    await eventually(async () => (await cp.deps.holds.list(who)).find((h) => h.id === id && h.status === 'expired'), 'hold expired');
    await expect(cp.deps.holds.decide(who, id, true)).rejects.toThrow(/already expired/);
    await new Promise((r) => setTimeout(r, 200));
    expect(await atTarget('select v from items where id = 4')).toBe('orig');
  });
});

describe('SQL policy: fastpath function calls', () => {
  it('psql \\lo_import works where no functions rule applies, is refused where one does', async () => {
    const file = join(cp.dataDir, 'lo.bin');
    await writeFile(file, 'large object payload');
    const before = Number(await atTarget('select count(*) from pg_largeobject_metadata'));
    const ok = await run('psql', [conninfo(broker.port, 'loosedb'), '-X', '-c', `\\lo_import ${file}`], { PGPASSWORD: token });
    expect(ok.stdout, ok.stderr).toMatch(/lo_import \d+/);
    expect(Number(await atTarget('select count(*) from pg_largeobject_metadata'))).toBe(before + 1);
    const refused = await run('psql', [conninfo(broker.port, 'poldb'), '-X', '-c', `\\lo_import ${file}`], { PGPASSWORD: token });
    expect(refused.stderr).toMatch(/fastpath function calls are refused here: rule no-file-functions/);
    expect(Number(await atTarget('select count(*) from pg_largeobject_metadata'))).toBe(before + 1);
    const ev = await eventually(async () => (await recorded()).filter((e) => e.type === 'statement' && e.protocol === 'function-call'), 'fastpath recorded');
    expect(ev.some((e) => !e.verdict && !e.error)).toBe(true);
    expect(ev.some((e) => e.verdict?.rule === 'no-file-functions' && e.error?.sqlstate === '42501')).toBe(true);
  });
});

describe('SQL policy: hot reload and known gaps', () => {
  it('an edited rule file applies to the next statement of a live session within 2 s; PREPAREd earlier still runs (KNOWN GAP)', async () => {
    const c = client();
    await c.connect();
    await c.query('prepare rp as select count(*)::int as n from reloadme');
    expect((await c.query('select count(*)::int as n from reloadme')).rows).toEqual([{ n: 1 }]);
    const t0 = Date.now();
    await writeRules(RULES_YAML + RELOAD_RULE);
    await eventually(async () => (await c.query('select count(*)::int as n from reloadme').then(() => false, (e) => e.code === '42501')) || undefined, 'new rule in force', 4000);
    expect(Date.now() - t0).toBeLessThan(2000);
    // KNOWN GAP: EXECUTE names a statement prepared before the rule existed; it has no relations to match.
    expect((await c.query('execute rp')).rows).toEqual([{ n: 1 }]);
    await writeRules(RULES_YAML);
    await eventually(async () => (await c.query('select 1 from reloadme').then(() => true, () => false)) || undefined, 'rule removed', 4000);
    await c.end();
  });

  it('KNOWN GAP: dynamic SQL in DO blocks and inside functions is not seen (the table is dropped)', async () => {
    const c = client();
    await c.connect();
    await c.query("DO $$ BEGIN EXECUTE 'DR' || 'OP TABLE gap_do'; END $$");
    await c.query("create function gap_fn() returns void language plpgsql as $$ begin execute 'drop table gap_fn_t'; end $$");
    await c.query('select gap_fn()');
    await c.end();
    expect(await atTarget("select to_regclass('gap_do') is null and to_regclass('gap_fn_t') is null")).toBe('t');
  });
});
