/**
 * SIEM export from a real `pam serve`: a real rsyslogd (imtcp, RFC 5424 parser) receives every
 * audit entry, including those written while it was down and one `pam secret` wrote from
 * another process; a webhook receiver checks each batch's HMAC and gets everything after it
 * stopped refusing; a sink that never answers overflows its bounded spool, which is audited and
 * counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/sshd.js';
import { freePort, metricValue, PROCESS_ROLES, startPamProcess, type PamProcess } from '../helpers/pam-process.js';

const HMAC_KEY = 'hook-key-for-the-test';
let dir: string;
let syslogPort: number;
let rsyslog: ChildProcess | undefined;
let hook: Server;
let hookUp = false;
const hookBatches: { seqHeader: string; entries: { seq: number; type: string }[] }[] = [];
let badSignatures = 0;
let proxy: PamProcess;

async function startRsyslog(): Promise<void> {
  const conf = join(dir, 'rsyslog.conf');
  await writeFile(conf, `global(workDirectory="${dir}")
module(load="imtcp")
template(name="t" type="string" string="%protocol-version%|%msgid%|%structured-data%|%msg%\\n")
ruleset(name="r") { action(type="omfile" file="${join(dir, 'syslog.out')}" template="t" flushInterval="0" asyncWriting="off") }
input(type="imtcp" port="${syslogPort}" address="127.0.0.1" ruleset="r")
`);
  rsyslog = spawn('rsyslogd', ['-n', '-f', conf, '-i', join(dir, `rsyslog-${process.pid}.pid`)], { stdio: 'ignore' });
  await waitFor(() => new Promise<boolean>((r) => {
    const s = connect(syslogPort, '127.0.0.1');
    s.once('connect', () => { s.destroy(); r(true); });
    s.once('error', () => r(false));
  }), 'rsyslogd to listen');
}

async function stopRsyslog(): Promise<void> {
  const r = rsyslog!;
  rsyslog = undefined;
  const gone = new Promise((res) => r.once('exit', res));
  r.kill('SIGKILL');
  await gone;
}

/** What rsyslogd parsed: protocol version, MSGID, structured data and the JSON entry. */
async function received(): Promise<{ version: string; msgid: string; sd: string; entry: { seq: number; type: string } }[]> {
  const text = await readFile(join(dir, 'syslog.out'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => {
    const [version, msgid, sd, ...msg] = l.split('|');
    return { version: version!, msgid: msgid!, sd: sd!, entry: JSON.parse(msg.join('|').replace(/^\uFEFF/, '')) };
  });
}

const auditLog = async () => (await readFile(join(proxy.dir, 'data', 'audit.log'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq: number; type: string; sink?: string });
const seqs = (xs: { seq: number }[]) => [...new Set(xs.map((x) => x.seq))];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pam-siem-'));
  syslogPort = await freePort();
  const deadPort = await freePort();
  await startRsyslog();
  hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (!hookUp) return void res.writeHead(503).end();
      const body = Buffer.concat(chunks);
      const want = `sha256=${createHmac('sha256', HMAC_KEY).update(body).digest('hex')}`;
      if (req.headers['x-pam-signature'] !== want) {
        badSignatures++;
        return void res.writeHead(401).end();
      }
      hookBatches.push({ seqHeader: String(req.headers['x-pam-seq']), entries: body.toString().trim().split('\n').map((l) => JSON.parse(l)) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
  await writeFile(join(dir, 'hook.key'), HMAC_KEY);
  proxy = await startPamProcess({
    roles: PROCESS_ROLES,
    metrics: true,
    extra: `targets:
  - name: box
    protocol: ssh
    address: "127.0.0.1:1"
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    logins: { root: { secret: box-root } }
audit_export:
  - { url: "syslog://127.0.0.1:${syslogPort}", name: siem }
  - { url: "http://127.0.0.1:${(hook.address() as { port: number }).port}/audit", secret_file: "${join(dir, 'hook.key')}", name: hook, batch_max: 3 }
  - { url: "syslog://127.0.0.1:${deadPort}", name: dead, spool_max_bytes: 4096 }
`,
  });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  if (rsyslog) await stopRsyslog();
  await new Promise((r) => hook?.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('audit_export', () => {
  it('delivers every audit entry to rsyslog as RFC 5424, including those written while it was down', async () => {
    await waitFor(async () => (await received()).some((m) => m.entry.type === 'config.loaded'), 'config.loaded at rsyslog', 800);
    await stopRsyslog();
    // While it is down: refused requests (bad tokens) and a secret set by another process.
    for (let i = 0; i < 5; i++) await fetch(`${proxy.server}/api/v1/grants`, { headers: { authorization: 'Bearer not.a-token.at-all' } });
    expect((await proxy.pam(['secret', 'set', 'while-down'], {}, 'v')).code).toBe(0);
    await waitFor(async () => metricValue((await proxy.ops('/metrics')).body, 'pam_audit_export_up', { sink: 'siem' }) === 0, 'the sink to be seen down', 800);
    expect(metricValue((await proxy.ops('/metrics')).body, 'pam_audit_export_spool_events', { sink: 'siem' })).toBeGreaterThan(0);
    const lastWhileDown = (await auditLog()).at(-1)!.seq;
    await startRsyslog();

    const got = await waitFor(async () => {
      const r = await received();
      return r.some((m) => m.entry.seq >= lastWhileDown) ? r : undefined;
    }, 'the spooled entries to arrive', 2400);
    // Every entry of the audit log up to then, in order (a batch cut by the outage may come twice).
    const logged = (await auditLog()).filter((e) => e.seq <= lastWhileDown);
    expect(seqs(got.map((m) => m.entry)).filter((s) => s <= lastWhileDown)).toEqual(logged.map((e) => e.seq));
    expect(got.map((m) => m.entry.type)).toEqual(expect.arrayContaining(['token.rejected', 'secret.set']));
    for (const m of got) {
      expect(m.version).toBe('1');
      expect(m.msgid).toBe(m.entry.type);
      expect(m.sd).toContain(`seq="${m.entry.seq}"`);
    }
    expect(JSON.stringify(got)).not.toContain('not.a-token.at-all');
  }, 120_000);

  it('posts signed batches of JSON lines to the webhook once it accepts them', async () => {
    await new Promise((r) => setTimeout(r, 1500));
    expect(hookBatches).toHaveLength(0);
    hookUp = true;
    const last = (await auditLog()).at(-1)!.seq;
    await waitFor(() => hookBatches.some((b) => b.entries.some((e) => e.seq >= last)), 'the webhook to catch up', 2400);
    expect(badSignatures).toBe(0);
    expect(hookBatches.every((b) => b.entries.length <= 3 && b.seqHeader === `${b.entries[0]!.seq}-${b.entries.at(-1)!.seq}`)).toBe(true);
    const delivered = seqs(hookBatches.flatMap((b) => b.entries));
    expect(delivered.filter((s) => s <= last)).toEqual((await auditLog()).filter((e) => e.seq <= last).map((e) => e.seq));
  }, 120_000);

  it('bounds the spool of a sink that never answers: the overflow is audited, exported and counted', async () => {
    // Access requests with long reasons: about 1.2 KiB of audit entry each.
    const dana = await proxy.token('dana', 'dba');
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${proxy.server}/api/v1/requests`, {
        method: 'POST', headers: { authorization: `Bearer ${dana}`, 'content-type': 'application/json' },
        body: JSON.stringify({ target: 'box', login: 'root', duration: '10m', reason: `filler ${i} ${'x'.repeat(990)}` }),
      });
      await r.body?.cancel();
    }
    const overflow = await waitFor(async () => (await auditLog()).find((e) => e.type === 'audit_export.overflow' && e.sink === 'dead'), 'an overflow entry', 800);
    expect(overflow).toMatchObject({ sink: 'dead', spool_max_bytes: 4096 });
    const m = (await proxy.ops('/metrics')).body;
    expect(metricValue(m, 'pam_audit_export_dropped_total', { sink: 'dead' })).toBeGreaterThan(0);
    expect(metricValue(m, 'pam_audit_export_spool_bytes', { sink: 'dead' })).toBeLessThanOrEqual(4096);
    expect(metricValue(m, 'pam_audit_export_up', { sink: 'dead' })).toBe(0);
    // The other sinks carry the news.
    await waitFor(async () => (await received()).some((x) => x.entry.type === 'audit_export.overflow'), 'the overflow at rsyslog', 800);
  }, 60_000);
});
