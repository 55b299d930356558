import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { createHash } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import fc from 'fast-check';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';
import type { PolicyRequest } from '../../policies/policy.types.js';
import { policyEngineOf } from '../helpers/policy-engine.js';

/**
 * The Postgres broker against the machine's PostgreSQL (127.0.0.1:5432): psql, pgbench and
 * node-postgres through the proxy, with what ran checked at the target and in the recording.
 */

const DB = `pgw_it_${process.pid}`;
const ROLE = `pgw_dba_${process.pid}`;
const targets: Target[] = [
  { name: 'itdb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: DB, tls: 'prefer', logins: { [ROLE]: { secret: 'itdb-dba' } }, defaultAction: 'allow' },
];

let cp: TestControlPlane;
let broker: Listener;
let policyBroker: Listener;
let token: string;
const seenByPolicy: PolicyRequest[] = [];

function run(cmd: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

const admin = (sql: string) => run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-Atc', sql]);
const conninfo = (port: number, ssl = 'require', db = 'itdb') => `host=127.0.0.1 port=${port} user=${ROLE} dbname=${db} sslmode=${ssl}`;
const psql = (args: string[], pw = token, port = broker.port, ssl = 'require') => run('psql', [conninfo(port, ssl), '-X', '-v', 'VERBOSITY=verbose', ...args], { PGPASSWORD: pw });

function client(port = broker.port, password = token): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user: ROLE, database: 'itdb', password, ssl: { rejectUnauthorized: false } });
}

/** Statement events of every recording so far (recordings flush within 250 ms). */
async function recorded(): Promise<Record<string, any>[]> {
  const dir = join(cp.dataDir, 'recordings');
  const out: Record<string, any>[] = [];
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) if (line) out.push({ ...JSON.parse(line), file: f });
  }
  return out;
}

async function eventually<T>(fn: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 60; i++) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const findStatement = (pred: (e: Record<string, any>) => boolean, what: string) =>
  eventually(async () => (await recorded()).find((e) => e.type === 'statement' && pred(e)), what);

beforeAll(async () => {
  await admin(`DROP DATABASE IF EXISTS ${DB}`);
  await admin(`DROP ROLE IF EXISTS ${ROLE}`);
  await admin(`SET password_encryption='scram-sha-256'; CREATE ROLE ${ROLE} LOGIN SUPERUSER PASSWORD 'dba-secret-1'`);
  await admin(`CREATE DATABASE ${DB} OWNER ${ROLE}`);
  cp = await startControlPlane({ targets });
  await cp.setSecret('itdb-dba', 'dba-secret-1');
  broker = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  const policy = policyEngineOf((req) => {
    seenByPolicy.push(req);
    if (req.protocol === 'postgres' && /drop\s+table/i.test(req.sql)) return { action: 'deny', rule: 'no-drop', message: 'DROP TABLE is not allowed here' };
    return { action: 'allow' };
  }, cp.deps.roles);
  policyBroker = await startPostgresBroker({ ...cp.deps, policy }, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'itdb', ROLE);
  token = await cp.token('alice');
});

afterAll(async () => {
  await broker?.close();
  await policyBroker?.close();
  await cp?.close();
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin(`DROP ROLE IF EXISTS ${ROLE}`);
});

describe('postgres broker: psql', () => {
  it('runs statements over TLS and records text, tag, rows and SQLSTATE as the client saw them', async () => {
    const r = await psql(['-c', "create table t1(id int primary key, name text)", '-c', "insert into t1 select g, 'n' || g from generate_series(1,5) g", '-c', 'select id, name from t1 where id <= 3 order by id', '-c', 'select * from no_such_table']);
    expect(r.stdout).toContain('INSERT 0 5');
    expect(r.stdout).toMatch(/\(3 rows\)/);
    expect(r.stderr).toContain('ERROR:  42P01: relation "no_such_table" does not exist');
    const ins = await findStatement((e) => e.sql?.startsWith('insert into t1'), 'insert event');
    expect(ins).toMatchObject({ protocol: 'simple', tag: 'INSERT 0 5', rows: 5 });
    const sel = await findStatement((e) => e.sql === 'select id, name from t1 where id <= 3 order by id', 'select event');
    expect(sel).toMatchObject({ tag: 'SELECT 3', rows: 3 });
    const err = await findStatement((e) => e.sql === 'select * from no_such_table', 'error event');
    expect(err.error).toEqual({ sqlstate: '42P01', message: 'relation "no_such_table" does not exist' });
    const start = (await recorded()).find((e) => e.type === 'start' && e.file === sel.file);
    expect(start).toMatchObject({ user: 'alice', login: ROLE, target: 'itdb', database: DB, tls: true });
    // At the target: it ran as the vaulted login.
    expect((await admin(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${ROLE}' AND datname = '${DB}'`)).code).toBe(0);
  });

  it('refuses without a grant (FATAL 28000 saying what to run) and audits it', async () => {
    const bob = await cp.token('bob');
    const r = await psql(['-c', 'select 1'], bob);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/FATAL: {2}(28000: )?no active grant for .*@itdb\. Ask for one: pam request --target itdb/);
    const audit = await cp.audit();
    expect(audit.some((a) => a.type === 'session.refused' && a.actor === 'bob' && a.target === 'itdb')).toBe(true);
  });

  it('refuses a bad token with 28P01 and audits it', async () => {
    const r = await psql(['-c', 'select 1'], 'not-a-token');
    expect(r.stderr).toMatch(/FATAL: {2}(28P01: )?IAM token rejected/);
    expect((await cp.audit()).some((a) => a.type === 'session.refused' && String(a.why).startsWith('token rejected'))).toBe(true);
  });

  it('copies in and out with \\copy, recording byte counts', async () => {
    const file = join(cp.dataDir, 'in.tsv');
    await writeFile(file, Array.from({ length: 100 }, (_, i) => `${1000 + i}\tcopied ${i}`).join('\n') + '\n');
    const r = await psql(['-c', `\\copy t1 from '${file}'`, '-c', `\\copy (select * from t1 where id >= 1000 order by id) to '${file}.out'`]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('COPY 100');
    const out = await readFile(`${file}.out`, 'utf8');
    expect(out.split('\n').filter(Boolean)).toHaveLength(100);
    const cin = await findStatement((e) => e.copy?.direction === 'in' && e.tag === 'COPY 100', 'copy in');
    expect(cin.copy.bytes).toBe((await readFile(file)).length);
    const cout = await findStatement((e) => e.copy?.direction === 'out', 'copy out');
    expect(cout).toMatchObject({ tag: 'COPY 100', rows: 100, copy: { bytes: out.length } });
  });

  it('runs pgbench -i and -S in simple, extended and prepared modes', async () => {
    const env = { PGPASSWORD: token };
    const init = await run('pgbench', [conninfo(broker.port), '-i', '-s', '1', '-q'], env);
    expect(init.code, init.stderr).toBe(0);
    for (const mode of ['simple', 'extended', 'prepared']) {
      const r = await run('pgbench', [conninfo(broker.port), '-S', '-t', '200', '-c', '2', '-M', mode], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('number of transactions actually processed: 400/400');
    }
    // Pipelined extended queries (\startpipeline: many Parse/Bind/Execute, one Sync).
    const script = join(cp.dataDir, 'pipeline.sql');
    await writeFile(script, "\\startpipeline\nselect 'pipe-a' as v, :client_id;\nselect count(*) from pgbench_branches;\nselect 'pipe-c' as v;\n\\endpipeline\n");
    const piped = await run('pgbench', [conninfo(broker.port), '-M', 'extended', '-t', '50', '-c', '2', '-f', script], env);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toContain('number of transactions actually processed: 100/100');
    const ev = await recorded();
    expect(ev.filter((e) => e.sql === "select 'pipe-c' as v;" && e.rows === 1 && e.tag === 'SELECT 1').length).toBe(100);
    expect(ev.filter((e) => e.protocol === 'extended' && /pgbench_accounts WHERE aid = \$1/.test(e.sql) && e.rows === 1).length).toBeGreaterThanOrEqual(800);
    // -M prepared: named statements, parameters recorded on each execution.
    expect(ev.some((e) => e.protocol === 'extended' && e.statement !== '' && /pgbench_accounts/.test(e.sql) && Array.isArray(e.params))).toBe(true);
  });

  it('interactive psql through a pty, and Ctrl-C cancels a running pg_sleep', async () => {
    const child = spawn('script', ['-qfec', `psql "${conninfo(broker.port)}" -X -P pager=off`, '/dev/null'], { env: { ...process.env, PGPASSWORD: token, TERM: 'xterm', PAGER: '' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const waitFor = (re: RegExp) => eventually(async () => re.test(out) || undefined, `pty output ${re}`);
    try {
      await waitFor(/itdb=#/);
      child.stdin.write("select 'pty-' || 42 as v;\n");
      await waitFor(/pty-42/);
      child.stdin.write('select pg_sleep(30);\n');
      await eventually(async () => (await admin(`SELECT count(*) FROM pg_stat_activity WHERE query = 'select pg_sleep(30);' AND state = 'active'`)).stdout.trim() === '1' || undefined, 'sleep running');
      child.stdin.write('\x03');
      await waitFor(/canceling statement due to user request/);
      child.stdin.write('\\q\n');
      await new Promise((r) => child.on('close', r));
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const ev = await findStatement((e) => e.sql === 'select pg_sleep(30);', 'cancelled statement');
    expect(ev.error.sqlstate).toBe('57014');
  });
});

describe('postgres broker: node-postgres', () => {
  it('prepared statements with text and binary parameters, recorded with their parameters', async () => {
    const c = client();
    await c.connect();
    await c.query('create table if not exists blobs(id int, data bytea)');
    const bin = Buffer.from([0, 1, 2, 250, 255]);
    for (const id of [1, 2]) await c.query({ name: 'ins-blob', text: 'insert into blobs values ($1, $2)', values: [id, bin] });
    const res = await c.query({ name: 'get-blob', text: 'select id, data from blobs where id = $1', values: [2] });
    expect(res.rows).toEqual([{ id: 2, data: bin }]);
    await expect(c.query('select 1/0')).rejects.toMatchObject({ code: '22012' });
    expect((await c.query('select 2 as x')).rows).toEqual([{ x: 2 }]);
    await c.end();
    const ins = await findStatement((e) => e.statement === 'ins-blob', 'insert event');
    // node-postgres sends Buffers in binary format: recorded as hex.
    expect(ins).toMatchObject({ protocol: 'extended', sql: 'insert into blobs values ($1, $2)', tag: 'INSERT 0 1', rows: 1 });
    expect(ins.params).toEqual(['1', { hex: '000102faff' }]);
    expect(await findStatement((e) => e.statement === 'get-blob', 'select')).toMatchObject({ rows: 1, params: ['2'] });
    expect((await findStatement((e) => e.sql === 'select 1/0', 'div')).error.sqlstate).toBe('22012');
  });

  it('cancels a running query through the proxy key', async () => {
    const c = client();
    await c.connect();
    const q = c.query('select pg_sleep(30)');
    await eventually(async () => (await admin(`SELECT count(*) FROM pg_stat_activity WHERE query = 'select pg_sleep(30)' AND state = 'active'`)).stdout.trim() === '1' || undefined, 'sleep');
    // The client's key is the proxy's, not the server's.
    const serverPid = Number((await admin(`SELECT pid FROM pg_stat_activity WHERE query = 'select pg_sleep(30)' AND state = 'active'`)).stdout);
    expect((c as any).processID).not.toBe(serverPid);
    const s = connect(broker.port, '127.0.0.1');
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE((c as any).processID, 8);
    cancel.writeInt32BE((c as any).secretKey, 12);
    s.end(cancel);
    await expect(q).rejects.toMatchObject({ code: '57014' });
    expect((await c.query('select 3 as x')).rows).toEqual([{ x: 3 }]);
    await c.end();
  });

  it('passes LISTEN/NOTIFY, NOTICE and ParameterStatus through', async () => {
    const a = client();
    const b = client();
    await a.connect();
    await b.connect();
    await a.query('LISTEN pgw_chan');
    const got = new Promise<pg.Notification>((r) => a.once('notification', r));
    await b.query("NOTIFY pgw_chan, 'hello'");
    expect(await got).toMatchObject({ channel: 'pgw_chan', payload: 'hello' });
    const notice = new Promise<any>((r) => b.once('notice', r));
    await b.query("DO $$BEGIN RAISE NOTICE 'careful'; END$$");
    expect((await notice).message).toBe('careful');
    await b.query("SET application_name = 'pgw-app'");
    expect((b as any).connectionParameters && true).toBe(true);
    await a.end();
    await b.end();
  });

  it('ends the session with FATAL when the grant is revoked, and on an auditor kill', async () => {
    await cp.grant('carol', 'itdb', ROLE);
    const c = client(broker.port, await cp.token('carol'));
    await c.connect();
    const errored = new Promise<any>((r) => c.on('error', r));
    const grant = (await cp.deps.access.listGrants(await cp.deps.identity.verify(await cp.token('approver-bot', ['approvers'])))).find((g) => g.user === 'carol')!;
    await cp.revoke(grant.id);
    const err = await errored;
    expect(err.message).toMatch(/terminating connection: access revoked/);
    expect(err.code).toBe('57P01');

    const d = client();
    await d.connect();
    const dErr = new Promise<any>((r) => d.on('error', r));
    const port = (d as any).connection.stream.localPort;
    const live = cp.deps.sessions.list().find((s) => s.clientAddress?.endsWith(`:${port}`))!;
    expect(cp.deps.sessions.kill(live.id, 'killed by auditor')).toBe(true);
    expect((await dErr).message).toMatch(/killed by auditor/);
    const end = await eventually(async () => (await recorded()).find((e) => e.type === 'end' && e.file.startsWith(live.recordingId)), 'end event');
    expect(end.reason).toBe('killed by auditor');
    // The catalog entry is sealed with the SHA-256 of the JSONL file.
    const meta = await eventually(async () => {
      const m = await cp.deps.recordings.get(live.recordingId);
      return m?.status === 'ended' ? m : undefined;
    }, 'sealed meta');
    const data = await readFile(cp.deps.recordings.dataPath(live.recordingId, 'jsonl'));
    expect(meta).toMatchObject({ protocol: 'postgres', format: 'jsonl', user: 'alice', target: 'itdb', database: DB, endReason: 'killed by auditor', bytes: data.length });
    expect(meta.sha256).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('a kill in the middle of a large result still ends with the FATAL, at the next message boundary', async () => {
    const c = client();
    await c.connect();
    c.on('error', () => {});
    const port = (c as any).connection.stream.localPort;
    const live = cp.deps.sessions.list().find((s) => s.clientAddress?.endsWith(`:${port}`))!;
    // 1 MB rows: almost every chunk the proxy relays ends inside a DataRow.
    let got = 0;
    (c as any).connection.stream.on('data', (d: Buffer) => {
      got += d.length;
      if (got > 3_000_000 && got - d.length <= 3_000_000) cp.deps.sessions.kill(live.id, 'killed mid-result');
    });
    const err = await c.query("select repeat('x', 1000000) from generate_series(1, 400)").catch((e) => e);
    expect(got).toBeGreaterThan(3_000_000);
    expect(err).toMatchObject({ code: '57P01', message: 'terminating connection: killed mid-result' });
    expect(got).toBeLessThan(400_000_000);
  });

  it('ends the session when the grant expires, and cancels what was still running', async () => {
    await cp.grant('erin', 'itdb', ROLE, 2500);
    const c = client(broker.port, await cp.token('erin'));
    await c.connect();
    c.on('error', () => {});
    // The FATAL arrives while the query runs: node-postgres fails that query with it.
    const err = await c.query("select pg_sleep(20), 'expiry-probe'").catch((e) => e);
    expect(err).toMatchObject({ code: '57P01', message: 'terminating connection: access grant expired' });
    // Nothing of the session keeps running at the target.
    await eventually(async () => (await admin(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%expiry-probe%' AND pid <> pg_backend_pid()`)).stdout.trim() === '0' || undefined, 'upstream query cancelled');
  });
});

describe('postgres broker: malformed input', () => {
  function raw(bytes: Buffer): Promise<Buffer> {
    return new Promise((resolve) => {
      const s = connect(broker.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      s.on('error', () => {});
      s.on('close', () => resolve(Buffer.concat(chunks)));
      s.write(bytes);
    });
  }

  it('answers garbage, bad lengths and oversize messages with ErrorResponse and a close; others keep working', async () => {
    const c = client();
    await c.connect();
    const garbage = await raw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(String.fromCharCode(garbage[0]!)).toBe('E');
    expect(garbage.toString()).toContain('invalid length of startup packet');
    const short = await raw(Buffer.from([0, 0, 0, 4]));
    expect(short.toString()).toContain('08P01');
    const bad = await raw(Buffer.from([0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78]));
    expect(bad.toString()).toContain('unsupported frontend protocol');
    expect((await c.query('select 4 as x')).rows).toEqual([{ x: 4 }]);
    // After login: an unknown message type in the middle of a session.
    const victim = client();
    await victim.connect();
    const vErr = new Promise<any>((r) => victim.on('error', r));
    (victim as any).connection.stream.write(Buffer.from([0x7a, 0, 0, 0, 4]));
    expect((await vErr).message).toMatch(/invalid frontend message type/);
    expect((await c.query('select 5 as x')).rows).toEqual([{ x: 5 }]);
    await c.end();
  });

  it('random bytes after login end only that session (fast-check, 25 runs)', async () => {
    const { serialize } = await import('pg-protocol');
    const bystander = client();
    await bystander.connect();
    const login = Buffer.concat([serialize.startup({ user: ROLE, database: 'itdb' }), serialize.password(token)]);
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 200 }), async (junk) => {
      const s = connect(broker.port, '127.0.0.1');
      s.on('error', () => {});
      let seen = Buffer.alloc(0);
      let sentJunk = false;
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      s.on('data', (d) => {
        seen = Buffer.concat([seen, d]);
        // After ReadyForQuery ('Z' … 'I'), the session is live: send the junk, then Terminate.
        if (!sentJunk && seen.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]))) {
          sentJunk = true;
          s.write(Buffer.from(junk));
          s.end(serialize.end());
        }
      });
      s.write(login);
      await closed;
      return sentJunk;
    }), { numRuns: 25 });
    expect((await bystander.query('select 6 as x')).rows).toEqual([{ x: 6 }]);
    await bystander.end();
  });

  it('closes a session whose message is over postgres.max_message_bytes with SQLSTATE 54000', async () => {
    const small = await startPostgresBroker({ ...cp.deps, config: { ...cp.deps.config, postgres: { ...cp.deps.config.postgres, maxMessageBytes: 4096 } } }, { host: '127.0.0.1', port: 0 });
    try {
        const c = client(small.port);
        await c.connect();
        c.on('error', () => {});
        expect((await c.query("select 'fits' as v")).rows).toEqual([{ v: 'fits' }]);
        const err = await c.query(`select '${'x'.repeat(5000)}'`).catch((e) => e);
        expect(err).toMatchObject({ code: '54000', message: expect.stringMatching(/over the limit of 4096/) });
    } finally {
      await small.close();
    }
  });
});

describe('postgres broker: cleartext tokens', () => {
  const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  it.skipIf(!external)('refuses a token over plain TCP on a non-loopback listener, accepts it over TLS', async () => {
    const l = await startPostgresBroker(cp.deps, { host: external!, port: 0 });
    try {
        const info = (ssl: string) => `host=${external} port=${l.port} user=${ROLE} dbname=itdb sslmode=${ssl}`;
        const plain = await run('psql', [info('disable'), '-Atc', 'select 1'], { PGPASSWORD: token });
        expect(plain.stderr).toMatch(/accepts IAM tokens only over TLS/);
        const tls = await run('psql', [info('require'), '-Atc', "select 'tls-ok'"], { PGPASSWORD: token });
        expect(tls.stdout.trim()).toBe('tls-ok');
    } finally {
      await l.close();
    }
  });
});

describe('postgres broker: policy seam', () => {
  it('denies a simple statement with 42501, forwards nothing, and keeps transaction state right', async () => {
    const c = client(policyBroker.port);
    await c.connect();
    await c.query('create table if not exists keepme(id int)');
    await expect(c.query('drop table keepme')).rejects.toMatchObject({ code: '42501', message: 'DROP TABLE is not allowed here' });
    expect((await c.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    // Inside a transaction block the block is aborted, as the client was told.
    await c.query('begin');
    await expect(c.query('drop table keepme')).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback');
    // Extended protocol: error, the rest of the batch skipped, then usable again.
    await expect(c.query({ text: 'drop table keepme /* $1 */', values: [] })).rejects.toMatchObject({ code: '42501' });
    await expect(c.query({ name: 'dropper', text: 'DROP TABLE keepme' })).rejects.toMatchObject({ code: '42501' });
    expect((await c.query({ text: 'select $1::int as v', values: [7] })).rows).toEqual([{ v: 7 }]);
    await c.end();
    expect((await admin(`SELECT to_regclass('keepme') IS NOT NULL FROM pg_database WHERE datname = '${DB}'`)).code).toBe(0);
    const still = await run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', DB, '-Atc', "select to_regclass('keepme') is not null"]);
    expect(still.stdout.trim()).toBe('t');
    const ev = await findStatement((e) => e.verdict?.action === 'deny' && e.protocol === 'extended', 'denied extended');
    expect(ev).toMatchObject({ verdict: { rule: 'no-drop' }, error: { sqlstate: '42501' } });
    expect(seenByPolicy.some((r) => r.protocol === 'postgres' && r.kind === 'sql' && r.user === 'alice' && r.target === 'itdb' && r.roles.includes('admin'))).toBe(true);
  });
});
