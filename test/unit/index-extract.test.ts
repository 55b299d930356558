import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingCatalog } from '../../recorder/catalog.js';
import type { AsciicastWriter } from '../../recorder/asciicast-writer.js';
import type { QueryLogWriter } from '../../recorder/query-log-writer.js';
import type { RecordingMeta } from '../../recorder/recording.types.js';
import { Indexer } from '../../recorder/index/indexer.js';
import { SqliteIndexStore } from '../../recorder/index/sqlite-index.js';
import { commandName, sqlName } from '../../recorder/index/command-name.js';
import { CHUNK_CHARS } from '../../recorder/index/extract-asciicast.js';
import { parseQuery } from '../../recorder/index/query-text.js';

const root = mkdtempSync(join(tmpdir(), 'pam-index-x-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`);

const header = { width: 80, height: 24, env: {}, title: 't' };
const who = { user: 'dana', subject: 'dana', login: 'root', target: 'prod-web' };

/** A recording written by the real writer through the catalog, as the SSH broker writes one. */
async function sshRecording(dir: string, write: (w: AsciicastWriter) => void): Promise<RecordingMeta> {
  const cat = await RecordingCatalog.open(join(dir, 'recordings'));
  const w = (await cat.start('asciicast', who, { header })) as AsciicastWriter;
  write(w);
  await w.close('client disconnected');
  await new Promise((r) => setTimeout(r, 20));
  return (await cat.list())[0]!;
}

function indexOf(dir: string): SqliteIndexStore {
  return new SqliteIndexStore(join(dir, `index-${n++}.sqlite`));
}

async function rebuilt(dir: string): Promise<SqliteIndexStore> {
  const s = indexOf(dir);
  await new Indexer(s, join(dir, 'recordings')).sync({ all: true });
  return s;
}

describe('command events from an SSH recording', () => {
  it('settles each command with the verdict markers the broker writes', async () => {
    const dir = fresh();
    await sshRecording(dir, (w) => {
      w.input('ls -la\r');
      w.output('total 0\r\n');
      w.input('systemctl stop nginx\r');
      w.marker('denied: systemctl stop nginx: Stopping services is blocked. (rule no-stop)');
      w.input('cat /etc/shadow\r');
      w.marker('alert (shadow-read): cat /etc/shadow');
      w.input('reboot\r');
      w.marker('review (reboots): hold_abc: reboot');
      w.marker('approved: hold_abc: reboot');
      w.input('shutdown now\r');
      w.marker('review (reboots): hold_def: shutdown now');
      w.marker('denied: shutdown now: hold_def not approved: an approver refused it (rule reboots)');
      w.marker('exec: uptime');
      w.marker('exit status 0');
      w.marker('exec: rm -rf /');
      w.marker('denied: rm -rf /: Not here.');
      w.marker('subsystem: sftp');
      w.marker('denied: sftp is not allowed');
    });
    const s = await rebuilt(dir);
    const cmds = s.search({ kinds: ['command'], limit: 50 }).hits.reverse().map((h) => h.command!);
    expect(cmds.map((c) => [c.via, c.text, c.verdict, c.rule, c.outcome])).toEqual([
      ['shell', 'ls -la', 'allow', undefined, undefined],
      ['shell', 'systemctl stop nginx', 'deny', 'no-stop', 'denied: Stopping services is blocked.'],
      ['shell', 'cat /etc/shadow', 'alert', 'shadow-read', undefined],
      ['shell', 'reboot', 'review', 'reboots', 'approved (hold_abc)'],
      ['shell', 'shutdown now', 'deny', 'reboots', 'hold_def not approved: an approver refused it'],
      ['exec', 'uptime', 'allow', undefined, 'exit 0'],
      ['exec', 'rm -rf /', 'deny', undefined, 'denied: Not here.'],
    ]);
    expect(s.sessions({ limit: 5 }).sessions[0]).toMatchObject({ denials: 4, commands: 7, user: 'dana' });
    s.close();
  });

  it('in the order the gate writes (verdict marker at Enter, then the Enter): one event per line, each with its rule', async () => {
    const dir = fresh();
    await sshRecording(dir, (w) => {
      w.input('ls -la');
      w.marker('allowed (default_action): ls -la');
      w.input('\r');
      w.output('total 0\r\n');
      // The same line again: its own event, not a second verdict on the first.
      w.input('ls -la');
      w.marker('allowed (ops-read): ls -la');
      w.input('\r');
      // Recalled from history (arrow keys): the keystrokes spell nothing, the marker has the line.
      w.input('\x1b[A');
      w.marker('allowed (default_action): systemctl status nginx');
      w.input('\r');
      // Tab completion: the keystrokes spell less than the line the shell ran.
      w.input('systemctl st\top nginx');
      w.marker('denied: systemctl stop nginx: Stopping services is blocked. (rule no-stop)');
      w.input('\r');
      // A password at a prompt (masked in the recording): no text, the default let it through.
      w.input('*******');
      w.marker('allowed (default_action): (input not echoed)');
      w.input('\r');
      w.input('cat /etc/shadow');
      w.marker('alert (shadow-read): cat /etc/shadow');
      w.input('\r');
      // A session without a policy has no markers: the typed line is the event, with no rule.
      w.input('uname -a\r');
    });
    const s = await rebuilt(dir);
    const cmds = s.search({ kinds: ['command'], limit: 50 }).hits.reverse().map((h) => [h.command!.text, h.command!.verdict, h.command!.rule ?? null]);
    expect(cmds).toEqual([
      ['ls -la', 'allow', 'default_action'],
      ['ls -la', 'allow', 'ops-read'],
      ['systemctl status nginx', 'allow', 'default_action'],
      ['systemctl stop nginx', 'deny', 'no-stop'],
      ['(input not echoed)', 'allow', 'default_action'],
      ['cat /etc/shadow', 'alert', 'shadow-read'],
      ['uname -a', 'allow', null],
    ]);
    expect(s.sessions({ limit: 5 }).sessions[0]).toMatchObject({ commands: 7, denials: 1 });
    s.close();
  });

  it('names commands through wrappers and assignments, statements by their keyword', () => {
    expect(commandName('sudo -u web /usr/bin/systemctl stop nginx')).toBe('systemctl');
    expect(commandName('LANG=C env nice -n 5 tar xf a.tar')).toBe('tar');
    expect(sqlName('  -- why\n/* note */ delete from t')).toBe('DELETE');
  });

  it('output chunks are found by words and point at the moment they were printed', async () => {
    const dir = fresh();
    await sshRecording(dir, (w) => {
      // Event times count from the writer's own start, just before this runs (taking t0 before
      // the catalog opened put the hit 0.14 s early on a loaded machine).
      const t0 = Date.now();
      // The writer batches output of one tick into one event: a resize writes each batch.
      w.output('\x1b[1mfirst\x1b[0m line\r\n', t0 + 10);
      w.resize(80, 24, t0 + 4000);
      w.output('lynx-at-five\r\n', t0 + 5000);
      w.resize(80, 24, t0 + 8000);
      w.output(`${'filler '.repeat(CHUNK_CHARS / 5)}\r\nlast-of-the-big-one\r\n`, t0 + 9000);
    });
    const s = await rebuilt(dir);
    const hit = s.search({ match: parseQuery('lynx').match, limit: 5 }).hits;
    expect(hit).toHaveLength(1);
    // At its own moment (5 s), not the chunk before it (0 s) nor after it (9 s).
    expect(hit[0]!.t).toBeGreaterThanOrEqual(4.9);
    expect(hit[0]!.t).toBeLessThan(5.5);
    expect(s.search({ match: parseQuery('first line').match, limit: 5 }).hits[0]!.t).toBeLessThan(0.5);
    // Escape sequences are not text: "1mfirst" is not a word.
    expect(s.search({ match: parseQuery('1mfirst').match, limit: 5 }).hits).toEqual([]);
    expect(s.search({ match: parseQuery('"last of the big one"').match, limit: 5 }).hits).toHaveLength(1);
    s.close();
  });
});

describe('statements from a Postgres recording', () => {
  it('one command event per statement with tag, rows, SQLSTATE and verdict', async () => {
    const dir = fresh();
    const cat = await RecordingCatalog.open(join(dir, 'recordings'));
    const w = (await cat.start('jsonl', { ...who, target: 'db1', database: 'shop' }, { start: { user: 'dana' } })) as QueryLogWriter;
    w.event({ type: 'statement', protocol: 'simple', sql: 'UPDATE orders SET paid = true WHERE id = 7', tag: 'UPDATE 1', rows: 1, verdict: { action: 'allow' } });
    w.event({ type: 'statement', protocol: 'simple', sql: 'DROP TABLE orders', error: { sqlstate: '42501', message: 'DROP is blocked.' }, verdict: { action: 'deny', rule: 'no-drop' } });
    w.event({ type: 'statement', protocol: 'extended', sql: 'DELETE FROM orders', tag: 'DELETE 40', rows: 40, verdict: { action: 'review', rule: 'bulk', hold: 'hold_1', decision: 'approved' } });
    w.event({ type: 'alert', sql: 'SELECT * FROM secrets', verdict: { action: 'alert', rule: 'watch' } });
    await w.close('client disconnected');
    await new Promise((r) => setTimeout(r, 20));
    const s = await rebuilt(dir);
    const rows = s.search({ kinds: ['sql'], limit: 10 }).hits.reverse().map((h) => [h.command!.name, h.command!.verdict, h.command!.rule, h.command!.outcome]);
    expect(rows).toEqual([
      ['UPDATE', 'allow', 'default_action', 'UPDATE 1'],
      ['DROP', 'deny', 'no-drop', 'ERROR 42501 DROP is blocked.'],
      ['DELETE', 'review', 'bulk', 'DELETE 40; review approved (hold_1)'],
      ['SELECT', 'alert', 'watch', 'alert'],
    ]);
    expect(s.search({ match: parseQuery('42501').match, limit: 5 }).hits).toHaveLength(1);
    expect(s.sessions({ limit: 5 }).sessions[0]).toMatchObject({ denials: 1, commands: 4, target: 'db1' });
    s.close();
  });
});

/** Splits a buffer at the given cut points. */
function cut(buf: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((x) => x % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    parts.push(buf.subarray(from, p));
    from = p;
  }
  parts.push(buf.subarray(from));
  return parts;
}

describe('live indexing equals indexing the finished file', () => {
  const event = fc.oneof(
    fc.record({ k: fc.constant('o' as const), text: fc.string({ unit: fc.constantFrom('a', 'b', 'é', ' ', '\r\n', '\x1b[1m', 'wolf', '😀'), maxLength: 300 }), dt: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({ k: fc.constant('i' as const), text: fc.constantFrom('ls\r', 'systemctl stop x\r', 'ca', 't f\r', '\x7f', 'echo wolf\r'), dt: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({ k: fc.constant('m' as const), text: fc.constantFrom('denied: systemctl stop x: no', 'exec: id', 'exit status 1', 'alert (r): ls', 'allowed (default_action): ls', 'allowed (r2): echo wolf', 'shell'), dt: fc.integer({ min: 0, max: 3000 }) }),
  );

  it('for any recording read in any pieces as it grows', async () => {
    // Any tick byte budget too: a tick that stops mid-file resumes where it stopped.
    await fc.assert(fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 40 }), fc.array(fc.nat(), { maxLength: 12 }), fc.integer({ min: 1, max: 2048 }), async (events, cuts, tickBytes) => {
      const dir = fresh();
      const t0 = Date.now();
      let at = t0;
      const meta = await sshRecording(dir, (w) => {
        for (const e of events) {
          at += e.dt;
          if (e.k === 'o') w.output(e.text, at);
          else if (e.k === 'i') w.input(e.text, at);
          else w.marker(e.text, at);
        }
      });
      const whole = await rebuilt(dir);
      // The same bytes appearing in pieces, read by the follower between pieces.
      const live = join(fresh(), 'recordings');
      mkdirSync(live, { recursive: true });
      const src = join(dir, 'recordings', `${meta.id}.cast`);
      const metaText = readFileSync(join(dir, 'recordings', `${meta.id}.meta.json`), 'utf8');
      const dst = join(live, `${meta.id}.cast`);
      writeFileSync(dst, '');
      const liveMeta = { ...meta, status: 'live' as const };
      delete (liveMeta as Partial<RecordingMeta>).end;
      writeFileSync(join(live, `${meta.id}.meta.json`), JSON.stringify(liveMeta));
      const store = indexOf(live);
      const ix = new Indexer(store, live, { tickBytes });
      await ix.onMeta(liveMeta);
      for (const piece of cut(readFileSync(src), cuts)) {
        appendFileSync(dst, piece);
        await ix.tick();
      }
      writeFileSync(join(live, `${meta.id}.meta.json`), metaText);
      await ix.onMeta(JSON.parse(metaText) as RecordingMeta);
      while (ix.behind) await ix.tick();
      expect(ix.following).toEqual([]);
      expect(store.dump()).toEqual(whole.dump());
      store.close();
      whole.close();
    }), { numRuns: 40 });
  });
});

describe('raw SSH recordings (channels without a pty)', () => {
  it('exec, output, exit status and denials are indexed, the same in pieces as whole', async () => {
    const { encodeHeader, encodeFrame, FrameType } = await import('../../recorder/raw-frame.js');
    const start = Date.parse('2026-12-01T10:00:00Z');
    const chan = (n: number, label: string) => encodeFrame(FrameType.Channel, 0, n, 0, Buffer.from(JSON.stringify({ kind: 'exec', label })));
    const body = Buffer.concat([
      encodeHeader({ version: 1, timestamp: start, title: 't', width: 80, height: 24 }),
      chan(0, 'echo badger'),
      encodeFrame(FrameType.Marker, 0, 0, 5, Buffer.from('exec: echo badger; exit 2')),
      encodeFrame(FrameType.Data, 0, 0, 6, Buffer.from('secret upload on stdin\n')),
      encodeFrame(FrameType.Data, 1, 0, 10, Buffer.from('badger-out\n')),
      encodeFrame(FrameType.Data, 2, 0, 12, Buffer.from([0xff, 0x00, 0xfe])),
      encodeFrame(FrameType.Marker, 0, 0, 20, Buffer.from('exit status 2')),
      encodeFrame(FrameType.Marker, 0, 1, 3000, Buffer.from('exec: rm -rf /')),
      encodeFrame(FrameType.Marker, 0, 1, 3001, Buffer.from('denied: rm -rf /: Not here. (rule no-rm)')),
      // A shell whose stdin the gate judged: each line is a command event from its verdict marker.
      encodeFrame(FrameType.Marker, 0, 0, 4000, Buffer.from('shell (no pty, stdin judged line by line)')),
      encodeFrame(FrameType.Channel, 0, 1, 4000, Buffer.from(JSON.stringify({ kind: 'raw', stdin: 'judged' }))),
      encodeFrame(FrameType.Marker, 0, 0, 4010, Buffer.from('allowed (ops-read): uptime --pretty')),
      encodeFrame(FrameType.Data, 0, 1, 4010, Buffer.from('uptime --pretty\n')),
      encodeFrame(FrameType.Marker, 0, 0, 4020, Buffer.from('denied: systemctl stop nginx: Stopping services is blocked. (rule no-stop)')),
      encodeFrame(FrameType.Data, 1, 1, 4030, Buffer.from('up 3 weeks\n')),
      // Binary stdin (a tar through a pipe) is not text to search.
      chan(2, 'tar xf -'),
      encodeFrame(FrameType.Data, 0, 2, 5000, Buffer.from([0x75, 0x73, 0x74, 0x61, 0x72, 0x00, 0xff, 0x70, 0x6c, 0x61, 0x74, 0x79, 0x70, 0x75, 0x73])),
    ]);
    const meta: RecordingMeta = { id: '0mx5cxr06-a7b17b3c', protocol: 'ssh', format: 'raw', user: 'dana', subject: 'dana', login: 'root', target: 'prod-web', start: new Date(start).toISOString(), bytes: body.length, status: 'ended' };
    const whole = join(fresh(), 'recordings');
    mkdirSync(whole, { recursive: true });
    writeFileSync(join(whole, `${meta.id}.raw`), body);
    writeFileSync(join(whole, `${meta.id}.meta.json`), JSON.stringify(meta));
    const w = indexOf(whole);
    await new Indexer(w, whole).sync({ all: true });
    const cmds = w.search({ kinds: ['command'], limit: 10 }).hits.reverse().map((h) => [h.command!.text, h.command!.verdict, h.command!.rule, h.command!.outcome]);
    expect(cmds).toEqual([
      ['echo badger; exit 2', 'allow', undefined, 'exit 2'], ['rm -rf /', 'deny', 'no-rm', 'denied: Not here.'],
      ['uptime --pretty', 'allow', 'ops-read', undefined], ['systemctl stop nginx', 'deny', 'no-stop', 'denied: Stopping services is blocked.'],
    ]);
    expect(w.search({ match: parseQuery('badger out').match, kinds: ['output'], limit: 5 }).hits).toHaveLength(1);
    // The stdin text of an exec no gate read (a piped script, an upload of text) is `input`, at its moment.
    const upload = w.search({ match: parseQuery('upload').match, limit: 5 }).hits;
    expect(upload.map((h) => [h.kind, h.t, h.snippet])).toEqual([['input', 0.006, 'secret upload on stdin']]);
    // Judged stdin lines are command events only, not input text again; binary stdin is not indexed.
    expect(w.search({ match: parseQuery('pretty').match, limit: 5 }).hits.map((h) => h.kind)).toEqual(['command']);
    expect(w.search({ match: parseQuery('platypus').match, limit: 5 }).hits).toEqual([]);
    expect(w.search({ match: parseQuery('ustar').match, limit: 5 }).hits).toEqual([]);
    expect(w.search({ match: parseQuery('binary stderr').match, kinds: ['marker'], limit: 5 }).hits).toHaveLength(1);
    await fc.assert(fc.asyncProperty(fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 1, max: 512 }), async (cuts, tickBytes) => {
      const live = join(fresh(), 'recordings');
      mkdirSync(live, { recursive: true });
      const dst = join(live, `${meta.id}.raw`);
      writeFileSync(dst, '');
      const liveMeta = { ...meta, status: 'live' as const };
      writeFileSync(join(live, `${meta.id}.meta.json`), JSON.stringify(liveMeta));
      const s = indexOf(live);
      const ix = new Indexer(s, live, { tickBytes });
      await ix.onMeta(liveMeta);
      for (const piece of cut(body, cuts)) {
        appendFileSync(dst, piece);
        await ix.tick();
      }
      writeFileSync(join(live, `${meta.id}.meta.json`), JSON.stringify(meta));
      await ix.onMeta(meta);
      while (ix.behind) await ix.tick();
      expect(ix.following).toEqual([]);
      expect(s.dump()).toEqual(w.dump());
      s.close();
    }), { numRuns: 30 });
    w.close();
  });
});

describe('bulk output', () => {
  it(`indexes at most MAX_OUTPUT_CHARS of output text per recording, then says so in a marker, and still indexes commands after it`, async () => {
    const { AsciicastExtractor, MAX_OUTPUT_CHARS } = await import('../../recorder/index/extract-asciicast.js');
    const ex = new AsciicastExtractor(0);
    const ops: import('../../recorder/index/index.types.js').IndexOp[] = [];
    const line = `${'QUJD'.repeat(19)}\n`; // base64-like: every line a unique-looking token
    const chunk = line.repeat(Math.ceil((64 * 1024) / line.length));
    let t = 0;
    for (let sent = 0; sent < MAX_OUTPUT_CHARS * 1.5; sent += chunk.length) ex.event((t += 0.001), 'o', chunk, ops);
    ex.event(t + 1, 'm', 'exec: systemctl stop nginx', ops);
    ex.end(ops);
    const output = ops.filter((o) => o.op === 'doc' && o.kind === 'output');
    const indexed = output.reduce((n, o) => n + (o as { text: string }).text.length, 0);
    expect(indexed).toBe(MAX_OUTPUT_CHARS);
    expect(ops.some((o) => o.op === 'doc' && o.kind === 'marker' && /not indexed/.test(o.text))).toBe(true);
    expect(ops.some((o) => o.op === 'command' && o.name === 'systemctl')).toBe(true);
  });
});
