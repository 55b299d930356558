/**
 * Signals to a real `pam serve`: SIGHUP with a broken file keeps the running config and says
 * why; SIGHUP with a new target makes it reachable while a live SSH shell keeps running; SIGTERM
 * during an SSH shell and a Postgres session warns both users, stops taking connections, ends
 * them after shutdown_grace and exits only with every recording sealed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import pg from 'pg';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { PROCESS_ROLES, startPamProcess, type PamProcess } from '../helpers/pam-process.js';

const PG_ROLE = `pam_sig_${process.pid}`;
const PG_PASS = 'sig-Secret-1';
const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]).toString();

let sshd: TestSshd;
let proxy: PamProcess | undefined;

const sshTarget = (name: string) => `  - name: ${name}
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web-root } }
`;
const pgTarget = `  - name: appdb
    protocol: postgres
    address: "127.0.0.1:5432"
    database: postgres
    tls: disable
    logins: { ${PG_ROLE}: { secret: appdb-sig } }
`;

/** An interactive shell through the proxy, collecting what the user sees. */
async function shell(port: number, token: string, login: string): Promise<{ client: ssh2.Client; ch: ssh2.ClientChannel; seen: () => string; closed: Promise<void> }> {
  const client = new ssh2.Client();
  client.on('error', () => {});
  client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => token)));
  await new Promise<void>((r, j) => client.once('ready', () => r()).once('error', j).connect({ host: '127.0.0.1', port, username: login, tryKeyboard: true }));
  const ch = await new Promise<ssh2.ClientChannel>((r, j) => client.shell({ cols: 100, rows: 20 }, (e, s) => (e ? j(e) : r(s))));
  let seen = '';
  ch.on('data', (d: Buffer) => (seen += d.toString()));
  ch.stderr.on('data', (d: Buffer) => (seen += d.toString()));
  const closed = new Promise<void>((r) => ch.once('close', () => r()));
  return { client, ch, seen: () => seen, closed };
}

const refusesConnections = (port: number) => new Promise<boolean>((r) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); r(false); });
  s.once('error', () => r(true));
});

beforeAll(async () => {
  sshd = await startSshd();
  psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}; SET password_encryption='scram-sha-256'; CREATE ROLE ${PG_ROLE} LOGIN PASSWORD '${PG_PASS}'`);
}, 30_000);

afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

afterAll(async () => {
  await sshd?.close();
  try { psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}`); } catch { /* still connected */ }
});

describe('signals', () => {
  it('SIGHUP: a broken file changes nothing; a new target becomes reachable and the live shell goes on', async () => {
    proxy = await startPamProcess({ roles: PROCESS_ROLES, extra: `targets:\n${sshTarget('web1')}` });
    expect((await proxy.pam(['secret', 'set', 'web-root'], {}, sshd.userKey)).code).toBe(0);
    await proxy.grant('dana', 'web1', 'root');
    const token = await proxy.token('dana', 'dba');
    const live = await shell(proxy.ports.ssh, token, 'root@web1');
    live.ch.write('echo before-$((2*21))\r');
    await waitFor(() => live.seen().includes('before-42'), 'the shell to answer');

    const good = await readFile(proxy.configFile, 'utf8');
    await writeFile(proxy.configFile, good.replace('targets:', 'targets: [oops'));
    proxy.proc.kill('SIGHUP');
    await waitFor(() => proxy!.stdout().includes('reload refused'), 'the refusal line');
    const refused = JSON.parse(proxy.stdout().split('\n').find((l) => l.includes('reload refused'))!);
    expect(refused.error).toMatch(/config: \(yaml\)/);
    // The new target is not there: the request for it is refused.
    const early = await proxy.pam(['request', '--target', 'web2', '--login', 'root', '--duration', '1h', '--reason', 'x'], { PAM_TOKEN: token });
    expect(early.code).not.toBe(0);

    await writeFile(proxy.configFile, good.replace('targets:\n', `targets:\n${sshTarget('web2')}`));
    proxy.proc.kill('SIGHUP');
    await waitFor(() => proxy!.stdout().includes('configuration reloaded'), 'the reload line');
    await proxy.grant('dana', 'web2', 'root');
    const second = await shell(proxy.ports.ssh, token, 'root@web2');
    second.ch.write('echo web2-$((6*7))\r');
    await waitFor(() => second.seen().includes('web2-42'), 'web2 to answer');
    second.client.end();
    // The shell opened before both reloads still runs.
    live.ch.write('echo after-$((3*3))\r');
    await waitFor(() => live.seen().includes('after-9'), 'the old shell to answer');
    live.client.end();

    const audit = (await readFile(join(proxy.dir, 'data', 'audit.log'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(audit.find((e) => e.type === 'config.refused')?.error).toMatch(/yaml/);
    expect(audit.find((e) => e.type === 'config.reloaded')).toMatchObject({ changed: ['targets'], targets: ['web2', 'web1'] });
  }, 120_000);

  it('SIGTERM: warns the SSH and Postgres users, refuses new connections, ends both after the grace and seals every recording', async () => {
    proxy = await startPamProcess({ roles: PROCESS_ROLES, metrics: true, extra: `shutdown_grace: 3s\ntargets:\n${sshTarget('web1')}${pgTarget}` });
    expect((await proxy.pam(['secret', 'set', 'web-root'], {}, sshd.userKey)).code).toBe(0);
    expect((await proxy.pam(['secret', 'set', 'appdb-sig'], {}, PG_PASS)).code).toBe(0);
    await proxy.grant('dana', 'web1', 'root');
    await proxy.grant('dana', 'appdb', PG_ROLE);
    const token = await proxy.token('dana', 'dba');
    const sh = await shell(proxy.ports.ssh, token, 'root@web1');
    sh.ch.write('echo up-$((5*5))\r');
    await waitFor(() => sh.seen().includes('up-25'), 'the shell to answer');
    const db = new pg.Client({ host: '127.0.0.1', port: proxy.ports.pg, database: 'appdb', user: PG_ROLE, password: token });
    const notices: string[] = [];
    let dbError: Error | undefined;
    db.on('notice', (n) => notices.push(n.message ?? ''));
    db.on('error', (e) => (dbError = e));
    await db.connect();
    expect((await db.query('select 7*6 as v')).rows[0].v).toBe(42);

    proxy.proc.kill('SIGTERM');
    await waitFor(() => sh.seen().includes('proxy is shutting down'), 'the SSH warning');
    await waitFor(() => notices.some((n) => n.includes('proxy is shutting down')), 'the Postgres notice');
    // During the grace: the node says it is not ready and takes no new sessions, the old ones work.
    const ready = await proxy.ops('/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).failing).toContain('listeners');
    expect(await refusesConnections(proxy.ports.ssh)).toBe(true);
    expect(await refusesConnections(proxy.ports.pg)).toBe(true);
    expect((await db.query('select 1 as v')).rows[0].v).toBe(1);
    sh.ch.write('echo still-$((4*4))\r');
    await waitFor(() => sh.seen().includes('still-16'), 'the shell during the grace');

    await sh.closed;
    expect(sh.seen()).toContain('[pam] session ended: proxy shutting down');
    await waitFor(() => dbError, 'the Postgres session to end');
    expect(await proxy.exited()).toBe(0);

    const dir = join(proxy.dir, 'data', 'recordings');
    const metas = await Promise.all((await readdir(dir)).filter((n) => n.endsWith('.meta.json')).map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8'))));
    expect(metas.map((m) => m.protocol).sort()).toEqual(['postgres', 'ssh']);
    for (const m of metas) {
      expect(m.status).toBe('ended');
      expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(m.endReason).toMatch(/proxy shutting down/);
    }
    const audit = (await readFile(join(proxy.dir, 'data', 'audit.log'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(audit.find((e) => e.type === 'proxy.stopping')).toMatchObject({ signal: 'SIGTERM', live_sessions: 2, grace_ms: 3000 });
    expect(audit.find((e) => e.type === 'proxy.stopped')).toMatchObject({ sessions_ended: 2, recordings_sealed: true });
    sh.client.end();
    await db.end().catch(() => undefined);
  }, 120_000);
});
