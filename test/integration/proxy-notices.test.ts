/**
 * The proxy's own lines to the user are part of the recording (issue 18): a denial, a hold and
 * its approval, a shutdown notice and a kill reason are in the recorded output of the channel
 * the user saw them on, at a marker with the same time; Postgres notices and the FATAL the proxy
 * sends are in the query log. Against a real sshd and the machine's PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import pg from 'pg';
import { exec } from '../helpers/ssh-exec.js';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshBroker } from '../../proxy/ssh/server.js';
import { startPostgresBroker } from '../../proxy/postgres/server.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';
import { castEvents } from '../../recorder/cast-reader.js';
import { rawCastEvents, rawFrames } from '../../recorder/raw-reader.js';
import { FrameType } from '../../recorder/raw-frame.js';
import { statementRows } from '../../recorder/query-log-reader.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';

type Client = ssh2.Client;

const DB = `pgn_it_${process.pid}`;
const ROLE = `pgn_user_${process.pid}`;
let sshd: TestSshd;
let cp: TestControlPlane;
let ssh: Listener;
let pgb: Listener;

const RULES = `command_rules:
  - name: no-shutdown
    protocol: ssh
    match: { command: shutdown }
    action: deny
    message: "Shutting targets down is blocked."
  - name: touch-needs-review
    protocol: ssh
    match: { command: touch, args_regex: 'x-review' }
    action: review
    message: "Review markers need a second pair of eyes."
`;

const psql = (db: string, sql: string) => new Promise<string>((resolve, reject) => {
  execFile('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-Atc', sql], (err, out) => (err ? reject(err) : resolve(out)));
});

beforeAll(async () => {
  sshd = await startSshd();
  await psql('postgres', `DROP DATABASE IF EXISTS ${DB}`);
  await psql('postgres', `DROP ROLE IF EXISTS ${ROLE}`);
  await psql('postgres', `SET password_encryption='scram-sha-256'; CREATE ROLE ${ROLE} LOGIN PASSWORD 'pgn-secret-1'`);
  await psql('postgres', `CREATE DATABASE ${DB} OWNER ${ROLE}`);
  const targets: Target[] = [
    { name: 'web', protocol: 'ssh', host: sshd.host, port: sshd.port, hostKey: sshd.hostKey, logins: { root: { secret: 'web-root' } }, defaultAction: 'allow' },
    { name: 'notedb', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: DB, tls: 'disable', logins: { [ROLE]: { secret: 'pgn' } }, defaultAction: 'allow' },
  ];
  cp = await startControlPlane({ targets, roles: RULES });
  await cp.setSecret('web-root', sshd.userKey);
  await cp.setSecret('pgn', 'pgn-secret-1');
  ssh = await startSshBroker(cp.deps, { host: '127.0.0.1', port: 0 }, { reviewTimeoutMs: 60_000 });
  pgb = await startPostgresBroker(cp.deps, { host: '127.0.0.1', port: 0 });
  await cp.grant('alice', 'web', 'root');
  await cp.grant('alice', 'notedb', ROLE);
}, 60_000);

afterAll(async () => {
  await ssh?.close();
  await pgb?.close();
  await cp?.close();
  await sshd?.close();
  await psql('postgres', `DROP DATABASE IF EXISTS ${DB}`).catch(() => undefined);
  await psql('postgres', `DROP ROLE IF EXISTS ${ROLE}`).catch(() => undefined);
});

async function connect(): Promise<Client> {
  const password = await cp.token('alice');
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c)).once('error', reject);
    c.connect({ host: '127.0.0.1', port: ssh.port, username: 'root@web', password, readyTimeout: 20_000 });
  });
}

async function sealed(id: string): Promise<RecordingMeta> {
  return waitFor(async () => {
    const m = await cp.deps.recordings.get(id);
    return m?.status === 'ended' ? m : undefined;
  }, 'recording sealed');
}

/** Each `[pam] …` marker and the output recorded at the same moment. */
function atMarkers(events: [number, string, string][]): { label: string; t: number; output: string }[] {
  return events.filter((e) => e[1] === 'm' && e[2].startsWith('[pam] ')).map(([t, , label]) => ({
    label, t, output: events.filter((e) => e[1] === 'o' && e[0] === t).map((e) => e[2]).join(''),
  }));
}

describe('SSH: what the proxy told the user is in the recording, marked', () => {
  it('pty shell: the denial, a shutdown notice and the kill reason are recorded output at their markers', async () => {
    const client = await connect();
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell({ cols: 120, rows: 30, term: 'xterm' }, (err, s) => (err ? reject(err) : resolve(s))));
    let seen = '';
    ch.on('data', (d: Buffer) => (seen += d.toString()));
    ch.stderr.on('data', (d: Buffer) => (seen += d.toString()));
    await waitFor(() => /[#$] $/.test(seen), 'prompt');
    ch.write('shutdown -h now\r');
    await waitFor(() => seen.includes('[pam] denied: Shutting targets down is blocked.'), 'denial shown');
    const live = await waitFor(() => cp.deps.sessions.list().find((s) => s.protocol === 'ssh'), 'live session');
    expect(cp.deps.sessions.notifyAll('maintenance at noon')).toBeGreaterThan(0);
    await waitFor(() => seen.includes('[pam] maintenance at noon'), 'notice shown');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    expect(cp.deps.sessions.kill(live.id, 'audit says stop')).toBe(true);
    await closed;
    expect(seen).toContain('[pam] session ended: audit says stop');

    const meta = await sealed(live.recordingId);
    expect(meta.format).toBe('asciicast');
    const events: [number, string, string][] = [];
    for await (const e of castEvents(cp.deps.recordings.dataPath(meta.id, 'asciicast'))) events.push(e);
    const said = atMarkers(events);
    expect(said.map((s) => s.label)).toEqual([
      '[pam] denied: Shutting targets down is blocked.',
      '[pam] maintenance at noon',
      '[pam] session ended: audit says stop',
    ]);
    // The exact text the client got, at the marker's time (what the target sent next may share the event).
    expect(said[0]!.output.startsWith('\r\n[pam] denied: Shutting targets down is blocked.')).toBe(true);
    expect(said[1]!.output.startsWith('\r\n[pam] maintenance at noon\r\n')).toBe(true);
    expect(said[2]!.output.startsWith('\r\n[pam] session ended: audit says stop\r\n')).toBe(true);
    // The policy's own denial marker stays, before the line the user was shown.
    const deny = events.find((e) => e[1] === 'm' && e[2].startsWith('denied: shutdown -h now'));
    expect(deny).toBeDefined();
    expect(deny![0]).toBeLessThanOrEqual(said[0]!.t);
  });

  it('exec without a pty: the denial and the hold messages are recorded stderr at their markers (raw recording)', async () => {
    const client = await connect();
    let holdId = '';
    try {
      const denied = await exec(client, 'shutdown -h now');
      expect(denied.code).toBe(126);
      expect(denied.stderr).toBe('[pam] denied: Shutting targets down is blocked.\r\n');

      const approver = await cp.deps.identity.verify(await cp.token('approver-bot', ['approvers']));
      const running = exec(client, 'touch /tmp/x-review-notice-$$ && echo made-it');
      const hold = await waitFor(async () => (await cp.deps.holds.list(approver)).find((h) => h.status === 'pending' && h.text.includes('x-review-notice')), 'hold');
      holdId = hold.id;
      await cp.deps.holds.decide(approver, hold.id, true);
      const r = await running;
      expect(r.stdout).toBe('made-it\n');
      expect(r.stderr).toContain(`[pam] approved: ${hold.id}`);
    } finally {
      client.end();
    }
    const meta = await waitFor(async () => (await cp.deps.recordings.list()).find((m) => m.format === 'raw' && m.status === 'ended'), 'raw recording sealed');
    const path = cp.deps.recordings.dataPath(meta.id, 'raw');
    // stderr frames hold exactly what the client's stderr got, each at its marker's time.
    const markers: { t: number; label: string }[] = [];
    const stderr: { t: number; text: string; channel: number }[] = [];
    const channels: number[] = [];
    for await (const { frames } of rawFrames(path)) {
      for (const f of frames) {
        if (f.type === FrameType.Marker) markers.push({ t: f.t, label: f.payload.toString() });
        if (f.type === FrameType.Data && f.stream === 2) stderr.push({ t: f.t, text: f.payload.toString(), channel: f.channel });
        if (f.type === FrameType.Channel) channels.push(f.channel);
      }
    }
    const said = markers.filter((m) => m.label.startsWith('[pam] '));
    expect(said.map((m) => m.label)).toEqual([
      '[pam] denied: Shutting targets down is blocked.',
      `[pam] Review markers need a second pair of eyes. / [pam] waiting for approval: pam approve-command ${holdId}  (Ctrl-C cancels)`,
      `[pam] approved: ${holdId}`,
    ]);
    for (const m of said) expect(stderr.filter((s) => s.t === m.t).map((s) => s.text).join('')).toContain(m.label.split(' / ')[0]);
    // The held exec and its run are one channel (the tap a notice opened is the relay's).
    expect(new Set(stderr.map((s) => s.channel)).size).toBe(2);
    expect(channels.length).toBe(2);
    // The player renders them where the user saw them.
    const rendered: string[] = [];
    for await (const e of rawCastEvents(path)) if (e[1] === 'o') rendered.push(e[2]);
    expect(rendered.join('')).toContain('[pam] denied: Shutting targets down is blocked.');
  });
});

describe('Postgres: notices and the FATAL the proxy sends are in the query log', () => {
  it('a notice to the client and the kill FATAL are lines of the query log and rows the UI shows', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: pgb.port, user: ROLE, database: 'notedb', password: await cp.token('alice') });
    const notices: string[] = [];
    const errors: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    c.on('error', (e) => errors.push(e.message));
    await c.connect();
    expect((await c.query('select 6*7 as v')).rows[0].v).toBe(42);
    const live = await waitFor(() => cp.deps.sessions.list().find((s) => s.protocol === 'postgres'), 'live pg session');
    cp.deps.sessions.notifyAll('maintenance at noon');
    // The notice is sent at the next message boundary: a query brings it.
    await c.query('select 1');
    expect(notices).toContain('maintenance at noon');
    cp.deps.sessions.kill(live.id, 'audit says stop');
    await waitFor(() => errors.length > 0, 'session ended');
    await c.end().catch(() => undefined);
    await c.end().catch(() => undefined);
    const meta = await sealed(live.recordingId);
    const lines = (await readFile(cp.deps.recordings.dataPath(meta.id, 'jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.find((l) => l.type === 'notice')).toMatchObject({ from: 'proxy', severity: 'NOTICE', message: 'maintenance at noon' });
    expect(lines.find((l) => l.type === 'error')).toMatchObject({ from: 'proxy', severity: 'FATAL', sqlstate: '57P01', message: 'terminating connection: audit says stop' });
    expect(lines.at(-1).type).toBe('end');
    const rows = await statementRows(cp.deps.recordings.dataPath(meta.id, 'jsonl'));
    expect(rows.rows.filter((r) => r.type === 'notice' || r.type === 'error').map((r) => r.message)).toEqual(['maintenance at noon', 'terminating connection: audit says stop']);
  });
});
