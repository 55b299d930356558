/**
 * Issue 16 against the shipped process: `pam serve` from YAML with an evidence key and a witness
 * outside data_dir, real ssh and psql sessions, then the insider's tampers on the real data
 * directory (never on the key or the witness) and the auditor's verify commands, and an
 * evidence bundle checked offline in a fresh directory with only the public key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { chmod, cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runOpenSsh, startSshd, waitFor, type TestSshd } from '../helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';
import { forge, type Tamper } from '../helpers/audit-forge.js';

const run = promisify(execFile);
const PG_ROLE = `pam_ev_${process.pid}`;
const PG_PASS = 'ev-Secret-1';
const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]).toString();

let dir: string;
let sshd: TestSshd;
let proxy: PamProcess;
let ports: PamProcess['ports'];
let configFile: string;
const data = () => join(dir, 'data');
const keyFile = () => join(dir, 'keys', 'evidence.key');
const witnessDir = () => join(dir, 'witness');
const pam = (args: string[], env: Record<string, string> = {}, input?: string, cwd?: string) => proxy.pam(args, env, input, cwd);
/** `pam serve` again on the same config and data_dir, after stopProxy(). */
const startProxy = () => proxy.restart();
const stopProxy = () => proxy.halt();
/** `pam serve` on the current data_dir; resolves with its exit code and output when it refuses. */
const serveOnce = () => proxy.serveOnce();

const lines = async () => (await readFile(join(data(), 'audit.log'), 'utf8')).split('\n').filter(Boolean);
const writeLines = (l: string[]) => writeFile(join(data(), 'audit.log'), l.join('\n') + '\n');

let sam = '';
let recs: { id: string; protocol: string; format: string }[] = [];

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
    extra: (d) => `evidence:
  signing_key_file: "./keys/evidence.key"
  witness: "file://${join(d, 'witness')}"
  checkpoint_interval: 1s
  origin: "evidence-test"
targets:
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
    logins: { ${PG_ROLE}: { secret: appdb-ev } }`,
  });
  ({ dir, ports, configFile } = proxy);
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await sshd?.close();
  try { psqlAdmin(`DROP ROLE IF EXISTS ${PG_ROLE}`); } catch { /* still connected */ }
});

describe('evidence (issue 16)', () => {
  it('creates the signing key 0600 outside data_dir, says so at start-up, and prints its public half', async () => {
    expect((await stat(keyFile())).mode & 0o777).toBe(0o600);
    expect(proxy.log()).toMatch(/evidence signed/);
    const pub = await pam(['evidence', 'public-key']);
    expect(pub.code).toBe(0);
    expect(pub.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/);
    await writeFile(join(dir, 'pub.pem'), pub.stdout);
  });

  it('records an ssh and a psql session whose seals land in the signed, witnessed log', async () => {
    const dana = (await pam(['dev', 'token', 'dana', '--groups', 'dba'])).stdout.trim();
    sam = (await pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
    expect((await pam(['secret', 'set', 'appdb-ev'], {}, PG_PASS + '\n')).code).toBe(0);
    expect((await pam(['secret', 'set', 'web1-root'], {}, sshd.userKey)).code).toBe(0);
    for (const target of ['appdb', 'web1']) {
      const req = await pam(['request', '--target', target, '--login', target === 'appdb' ? PG_ROLE : 'root', '--duration', '30m', '--reason', 'INC-16', '--json'], { PAM_TOKEN: dana });
      expect((await pam(['approve', JSON.parse(req.stdout).id], { PAM_TOKEN: sam })).code).toBe(0);
    }
    const { stdout } = await run('psql', [`host=127.0.0.1 port=${ports.pg} dbname=appdb user=${PG_ROLE}`, '-Atc', "select 'ev-' || 40 + 2"], { env: { ...process.env, PGPASSWORD: dana } });
    expect(stdout.trim()).toBe('ev-42');
    const ssh = await runOpenSsh('ssh', dana, ['-p', String(ports.ssh), '-l', 'root@web1', '127.0.0.1', 'echo ssh-$((6*7))']);
    expect(ssh.stdout.trim()).toBe('ssh-42');
    // With a pty the recording is asciicast (the player's format); without, raw streams.
    const tty = await runOpenSsh('ssh', dana, ['-tt', '-p', String(ports.ssh), '-l', 'root@web1', '127.0.0.1', 'echo tty-$((6*7))']);
    expect(tty.stdout).toContain('tty-42');
    recs = await waitFor(async () => {
      const r = JSON.parse((await pam(['recordings', 'list', '--json'], { PAM_TOKEN: sam })).stdout) as { id: string; protocol: string; format: string; status: string }[];
      return r.filter((x) => x.status === 'ended').length >= 3 ? r : undefined;
    }, 'the three recordings to end');
    expect(recs.map((r) => r.format).sort()).toEqual(['asciicast', 'jsonl', 'raw']);
    const sealed = (await lines()).map((l) => JSON.parse(l)).filter((e) => e.type === 'recording.sealed');
    expect(sealed.map((e) => e.format).sort()).toEqual(['asciicast', 'jsonl', 'raw']);

    const audit = await pam(['audit', 'verify'], { PAM_TOKEN: sam });
    expect(audit.code).toBe(0);
    expect(audit.stdout).toMatch(/audit chain intact \(\d+ entries, 3 sealed recordings checked\)/);
    expect(audit.stdout).toContain(`file://${witnessDir()}`);
    for (const r of recs) {
      const v = await pam(['recordings', 'verify', r.id], { PAM_TOKEN: sam });
      expect(v.stdout).toMatch(/^intact \(sha256 [0-9a-f]{64}; seal at audit entry \d+; checkpoint of \d+ entries signed/);
    }
    // The witness holds checkpoints, each naming its key.
    const witnessed = (await readFile(join(witnessDir(), 'checkpoints.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(witnessed.length).toBeGreaterThan(0);
    expect(witnessed.every((c) => /^[0-9a-f]{32}$/.test(c.key_id) && c.origin === 'evidence-test')).toBe(true);
  }, 240_000);

  it('a recording edited while the proxy runs, its catalog sha256 recomputed, is caught by both verifies', async () => {
    const sh = recs.find((r) => r.format === 'raw')!;
    const castPath = join(data(), 'recordings', `${sh.id}.raw`);
    const metaPath = join(data(), 'recordings', `${sh.id}.meta.json`);
    const [cast, meta] = [await readFile(castPath), await readFile(metaPath, 'utf8')];
    const forged = Buffer.from(cast.toString('utf8').replace('ssh-42', 'ssh-00'));
    expect(forged.equals(cast)).toBe(false);
    await writeFile(castPath, forged);
    const { createHash } = await import('node:crypto');
    await writeFile(metaPath, JSON.stringify({ ...JSON.parse(meta), sha256: createHash('sha256').update(forged).digest('hex') }));
    try {
      const v = await pam(['recordings', 'verify', sh.id], { PAM_TOKEN: sam });
      expect(v.code).toBe(1);
      expect(v.stdout).toMatch(/TAMPERED: the recording's bytes changed: sealed sha256 [0-9a-f]{64}, file is/);
      const a = await pam(['audit', 'verify'], { PAM_TOKEN: sam });
      expect(a.code).toBe(1);
      expect(a.stdout).toContain(`recording ${sh.id} was changed`);
      expect(a.stdout).toContain(`catalog entry of ${sh.id} names sha256`);
      // No bundle is made of broken evidence; the refusal is audited.
      const b = await pam(['evidence', 'export', sh.id, '--output', join(dir, 'refused-bundle')], { PAM_TOKEN: sam });
      expect(b.code).not.toBe(0);
      expect(b.stderr).toMatch(/does not verify/);
    } finally {
      await writeFile(castPath, cast);
      await writeFile(metaPath, meta);
    }
    expect((await pam(['recordings', 'verify', sh.id], { PAM_TOKEN: sam })).code).toBe(0);
  }, 60_000);

  it('exports bundles that verify offline with only the public key, and fail on any flipped byte', async () => {
    const fresh = await mkdtemp(join(tmpdir(), `pam-bundle-${process.pid}-`));
    try {
      for (const r of recs) {
        const out = join(dir, `bundle-${r.format}`);
        const e = await pam(['evidence', 'export', r.id, '--output', out], { PAM_TOKEN: sam });
        expect(e.stderr, r.format).toBe('');
        expect(e.code).toBe(0);
        // Carried away: a fresh directory, no config, no data_dir, no server.
        const carried = join(fresh, r.format);
        await cp(out, carried, { recursive: true });
        await writeFile(join(fresh, 'trusted.pem'), await readFile(join(dir, 'pub.pem')));
        const offline = { PAM_CONFIG: '/nonexistent/pam.yaml', PAM_SERVER: 'http://127.0.0.1:1' };
        const ok = await pam(['evidence', 'verify', carried, '--public-key', join(fresh, 'trusted.pem')], offline, undefined, fresh);
        expect(ok.stdout).toMatch(new RegExp(`^bundle verified: recording ${r.id}`));
        expect(ok.code).toBe(0);
        const common = ['seal.json', 'proof.json', 'checkpoint.json', 'catalog.json', 'public-key.pem', 'index.html', 'recording.js'];
        const files = r.format === 'asciicast'
          ? ['recording.cast', ...common, 'player/asciinema-player.min.js', 'player/asciinema-player.css']
          : [r.format === 'raw' ? 'recording.raw' : 'recording.jsonl', ...common];
        expect((await readdir(carried, { recursive: true })).filter((f) => !f.endsWith('player'))).toEqual(expect.arrayContaining(files));
        for (const f of files) {
          const path = join(carried, f);
          const orig = await readFile(path);
          const flipped = Buffer.from(orig);
          const at = Math.floor(orig.length / 2);
          flipped[at] = flipped[at]! ^ 0x01;
          await writeFile(path, flipped);
          const bad = await pam(['evidence', 'verify', carried, '--public-key', join(fresh, 'trusted.pem')], offline, undefined, fresh);
          expect(bad.code, `flipped byte in ${f}`).toBe(1);
          expect(bad.stdout).toMatch(/bundle does NOT verify/);
          expect(bad.stdout).toContain(f.split('/').pop()!);
          await writeFile(path, orig);
        }
        // Another key is not trusted, even with an intact bundle.
        const other = join(fresh, 'other.pem');
        const { generateKeyPairSync } = await import('node:crypto');
        await writeFile(other, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
        const wrongKey = await pam(['evidence', 'verify', carried, '--public-key', other], offline, undefined, fresh);
        expect(wrongKey.code).toBe(1);
        expect(wrongKey.stdout).toMatch(/not among the trusted public keys/);
      }
      const exported = (await lines()).map((l) => JSON.parse(l)).filter((e) => e.type === 'evidence.export');
      expect(exported.map((e) => e.recording).sort()).toEqual(recs.map((r) => r.id).sort());
      expect(exported.every((e) => e.actor === 'sam')).toBe(true);
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  }, 120_000);

  describe('after shutdown, the insider edits data_dir (never the key or the witness)', () => {
    let original: string[] = [];
    const backup = () => join(dir, 'data-backup');

    beforeAll(async () => {
      await stopProxy();
      original = await lines();
      // The shutdown checkpoint covers every entry, and the witness has it.
      const latest = JSON.parse(await readFile(join(witnessDir(), 'latest.json'), 'utf8'));
      expect(latest.size).toBe(original.length);
      await cp(data(), backup(), { recursive: true });
    }, 60_000);

    const restore = async () => {
      await rm(data(), { recursive: true, force: true });
      await cp(backup(), data(), { recursive: true });
    };

    it('the untouched data_dir verifies locally, with no proxy running', async () => {
      const v = await pam(['audit', 'verify', '--local']);
      expect(v.stdout).toMatch(/audit chain intact/);
      expect(v.stdout).toMatch(new RegExp(`signed: checkpoint of ${original.length} entries`));
      expect(v.code).toBe(0);
    });

    const approvalAt = () => original.findIndex((l) => JSON.parse(l).type === 'grant');

    it.each<[Tamper, RegExp]>([
      ['edit', /do not match the checkpoint of \d+ entries signed at/],
      ['remove', /do not match the checkpoint/],
      ['reorder', /do not match the checkpoint/],
      ['truncate', /entries \d+\.\.\d+ are gone \(truncated or deleted\)/],
    ])('%s of audit entries with the chain recomputed is caught, and pam serve refuses to extend the log', async (how, why) => {
      await restore();
      const at = how === 'truncate' ? original.length - 3 : approvalAt();
      expect(at).toBeGreaterThan(0);
      const forged = forge(original, how, at, (e) => (e.approver = 'nobody'));
      await writeLines(forged);
      // The old check alone would have said all is well.
      const { checkAuditChain } = await import('../../recorder/audit-log.js');
      expect(checkAuditChain(forged).ok).toBe(true);
      const v = await pam(['audit', 'verify', '--local']);
      expect(v.code).toBe(1);
      expect(v.stdout).toMatch(/audit log BROKEN/);
      expect(v.stdout).toMatch(why);
      const serve = await serveOnce();
      expect(serve.code).toBe(1);
      expect(serve.out).toMatch(/audit log/);
    }, 60_000);

    it('a sealed recording deleted with its catalog entry is caught by audit verify and recordings verify', async () => {
      await restore();
      const pg = recs.find((r) => r.protocol === 'postgres')!;
      await rm(join(data(), 'recordings', `${pg.id}.jsonl`));
      await rm(join(data(), 'recordings', `${pg.id}.meta.json`));
      const v = await pam(['audit', 'verify', '--local']);
      expect(v.code).toBe(1);
      expect(v.stdout).toContain(`recording ${pg.id} is missing (sealed, then deleted)`);
      expect(v.stdout).toContain(`recording ${pg.id} has a seal but no catalog entry`);
      const r = await pam(['recordings', 'verify', pg.id, '--local']);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/TAMPERED: the recording file is missing \(sealed at audit.log entry \d+\)/);
    });

    it('a signing key readable by others is refused by pam serve and pam evidence public-key', async () => {
      await restore();
      await chmod(keyFile(), 0o640);
      try {
        const serve = await serveOnce();
        expect(serve.code).toBe(1);
        expect(serve.out).toMatch(/mode 0640, wider than 0600/);
        expect((await pam(['evidence', 'public-key'])).stderr).toMatch(/wider than 0600/);
      } finally {
        await chmod(keyFile(), 0o600);
      }
    });

    it('the restored data_dir starts again and keeps extending the same log', async () => {
      await restore();
      await startProxy();
      const v = await pam(['audit', 'verify'], { PAM_TOKEN: sam });
      expect(v.code).toBe(0);
      expect(v.stdout).toMatch(/audit chain intact/);
    }, 60_000);

    it('a rotated signing key keeps the old checkpoints verifiable when the old public key stays listed', async () => {
      await stopProxy();
      const { rename } = await import('node:fs/promises');
      const oldPub = (await pam(['evidence', 'public-key'])).stdout;
      await rename(keyFile(), join(dir, 'keys', 'retired.key'));
      await writeFile(join(dir, 'keys', 'old.pub'), oldPub);
      const yaml = await readFile(configFile, 'utf8');
      // Without the old key listed, the checkpoints it signed are not believed: no start, and
      // verify says why.
      const refused = await serveOnce();
      expect(refused.code).toBe(1);
      expect(refused.out).toMatch(/not among the trusted public keys; after a key rotation list the old public key in evidence.previous_public_keys/);
      const newPub = (await pam(['evidence', 'public-key'])).stdout;
      expect(newPub).not.toBe(oldPub);
      const unlisted = await pam(['audit', 'verify', '--local']);
      expect(unlisted.code).toBe(1);
      expect(unlisted.stdout).toMatch(/not genuine: signed by key [0-9a-f]{32}, which is not among the trusted public keys/);
      await writeFile(configFile, yaml.replace('  checkpoint_interval: 1s', '  checkpoint_interval: 1s\n  previous_public_keys: ["./keys/old.pub"]'));
      await startProxy();
      const listed = await pam(['audit', 'verify'], { PAM_TOKEN: sam });
      expect(listed.stdout).toMatch(/audit chain intact/);
      expect(listed.code).toBe(0);
      const keys = new Set((await readFile(join(witnessDir(), 'checkpoints.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l).key_id));
      expect(keys.size).toBe(2);
      // An old bundle still verifies with a key file holding both public keys.
      await writeFile(join(dir, 'both.pem'), oldPub + newPub);
      const old = await pam(['evidence', 'verify', join(dir, 'bundle-asciicast'), '--public-key', join(dir, 'both.pem')]);
      expect(old.code).toBe(0);
    }, 90_000);
  });
});

describe('without an evidence section', () => {
  it('the proxy serves and says at start-up that evidence is unsigned', async () => {
    const p = await startPamProcess({ roles: 'roles:\n  - { name: aud, groups: [aud], can_audit: true }\n' });
    try {
      expect(p.log()).toMatch(/evidence is unsigned/);
      const v = await p.pam(['audit', 'verify', '--local']);
      expect(v.stdout).toMatch(/intact/);
      expect(v.stdout).toMatch(/warning: evidence is unsigned/);
      // A bundle would prove nothing: refused with the reason, and the refusal audited.
      const aud = (await p.pam(['dev', 'token', 'ann', '--groups', 'aud'])).stdout.trim();
      const e = await p.pam(['evidence', 'export', '0000000000-abcdef01', '--output', join(p.dir, 'b')], { PAM_TOKEN: aud });
      expect(e.code).toBe(1);
      expect(e.stderr).toMatch(/evidence is unsigned .* a bundle would prove nothing/);
      expect(await readFile(join(p.dir, 'data', 'audit.log'), 'utf8')).toContain('"evidence.export_refused"');
    } finally {
      await p.stop();
    }
  }, 60_000);
});
