/**
 * What signed evidence (issue 16) costs: two `pam serve` processes from YAML, one with an
 * `evidence:` section (Ed25519 key, file witness, 1 s checkpoints) and one without, the same
 * targets, in one run and interleaved rounds, beside the direct connection:
 *   - pgbench select-only over persistent connections (TPS),
 *   - pgbench -C, a new proxied session per transaction (every transaction adds session.start,
 *     recording.sealed and session.end leaves to the Merkle tree: the worst case for evidence),
 *   - `ssh cat FILE` bulk download (MB/s).
 * CPU per unit of work is read from /proc/PID/stat of each pam serve process.
 *
 *   node bin/run-ts.js bench/evidence-cost.ts [--seconds 8] [--clients 4] [--mb 100] [--rounds 2]
 *
 * Needs PostgreSQL on 127.0.0.1:5432 (trust for postgres), pgbench, sshd, sshpass.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OPENSSH_OPTS, startSshd } from '../test/helpers/sshd.js';
import { startPamProcess, type PamProcess } from '../test/helpers/pam-process.js';

const exec = promisify(execFile);
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 8);
const CLIENTS = arg('clients', 4);
const MB = arg('mb', 100);
const ROUNDS = arg('rounds', 2);
const DB = `pam_evbench_${process.pid}`;

const psqlAdmin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qAtc', sql]).toString();
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** user+system CPU ms of a process, from /proc/PID/stat (fields 14 and 15). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

const sshd = await startSshd();
const work = await mkdtemp(join(tmpdir(), 'pam-evbench-'));
const file = join(sshd.dir, 'bulk.txt');
execFileSync('sh', ['-c', `head -c ${Math.round((MB * 1024 * 1024 * 3) / 4)} /dev/urandom | base64 > ${file}`]);
const bytes = Number(execFileSync('stat', ['-c', '%s', file]).toString());
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
psqlAdmin(`CREATE DATABASE ${DB}`);
await exec('pgbench', ['-h', '127.0.0.1', '-U', 'postgres', '-i', '-s', '5', '-q', DB]);

const ROLES = `roles:
  - name: bench
    groups: [bench]
    can_request: [{ targets: ["*"], logins: ["*"], max_duration: 8h }]
  - name: boss
    groups: [boss]
    can_approve: [bench]
`;
const targets = `targets:
  - name: web
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: web-root } }
  - name: ${DB}
    protocol: postgres
    address: "127.0.0.1:5432"
    database: ${DB}
    tls: disable
    logins: { postgres: { secret: pg } }
`;

async function proxy(evidence: boolean): Promise<{ p: PamProcess; token: string }> {
  const extra = targets + (evidence ? `evidence:
  signing_key_file: "./keys/evidence.key"
  witness: "file://${join(work, `witness-${Date.now()}`)}"
  checkpoint_interval: 1s
` : '');
  const p = await startPamProcess({ roles: ROLES, extra });
  const token = (await p.pam(['dev', 'token', 'bench', '--groups', 'bench', '--ttl', '8h'])).stdout.trim();
  const boss = (await p.pam(['dev', 'token', 'boss', '--groups', 'boss'])).stdout.trim();
  await p.pam(['secret', 'set', 'web-root'], {}, sshd.userKey);
  await p.pam(['secret', 'set', 'pg'], {}, 'unused-trust\n');
  for (const [t, l] of [['web', 'root'], [DB, 'postgres']]) {
    const r = await p.pam(['request', '--target', t!, '--login', l!, '--duration', '4h', '--reason', 'bench', '--json'], { PAM_TOKEN: token });
    await p.pam(['approve', JSON.parse(r.stdout).id], { PAM_TOKEN: boss });
  }
  return { p, token };
}

async function pgbench(port: number, password: string | undefined, extra: string[]): Promise<number> {
  const { stdout } = await exec('pgbench', [`host=127.0.0.1 port=${port} dbname=${DB} user=postgres`, '-n', '-S', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), ...extra], {
    env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) }, timeout: (SECONDS + 60) * 1000, maxBuffer: 1 << 24,
  });
  const m = /tps = ([\d.]+) \((?:without|excluding) initial connection/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`no tps:\n${stdout}`);
  return Number(m[1]);
}

function sshCat(port: number | undefined, token: string | undefined): Promise<number> {
  const args = port === undefined
    ? ['ssh', ['-i', join(sshd.dir, 'id_ed25519'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-p', String(sshd.port), 'root@127.0.0.1', `cat ${file}`]] as const
    : ['sshpass', ['-P', 'IAM token', '-e', 'ssh', ...OPENSSH_OPTS, '-o', 'LogLevel=ERROR', '-o', `Port=${port}`, '-o', 'User=root@web', '127.0.0.1', `cat ${file}`]] as const;
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn(args[0], [...args[1]], { env: { ...process.env, ...(token ? { SSHPASS: token } : {}) }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.once('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e9) : reject(new Error(`ssh exited ${code}: ${err}`))));
  });
}

const on = await proxy(true);
const off = await proxy(false);
type Row = { tps: number[]; tpsConnect: number[]; mbps: number[]; cpuMsPer1kTx: number[]; cpuMsPer1kConnect: number[]; cpuMsPerMB: number[] };
const rows: Record<'direct' | 'evidence off' | 'evidence on', Row> = {
  direct: { tps: [], tpsConnect: [], mbps: [], cpuMsPer1kTx: [], cpuMsPer1kConnect: [], cpuMsPerMB: [] },
  'evidence off': { tps: [], tpsConnect: [], mbps: [], cpuMsPer1kTx: [], cpuMsPer1kConnect: [], cpuMsPerMB: [] },
  'evidence on': { tps: [], tpsConnect: [], mbps: [], cpuMsPer1kTx: [], cpuMsPer1kConnect: [], cpuMsPerMB: [] },
};
for (let round = 0; round < ROUNDS; round++) {
  // Alternate which proxy goes first, so a noisy neighbour hits both alike.
  const order = round % 2 === 0 ? (['evidence off', 'evidence on'] as const) : (['evidence on', 'evidence off'] as const);
  rows.direct.tps.push(await pgbench(5432, undefined, []));
  rows.direct.tpsConnect.push(await pgbench(5432, undefined, ['-C']));
  rows.direct.mbps.push(bytes / 1024 / 1024 / (await sshCat(undefined, undefined)));
  for (const name of order) {
    const { p, token } = name === 'evidence on' ? on : off;
    const pid = p.proc.pid!;
    let c = await cpuMs(pid);
    const tps = await pgbench(p.ports.pg, token, []);
    rows[name].tps.push(tps);
    rows[name].cpuMsPer1kTx.push(((await cpuMs(pid)) - c) / ((tps * SECONDS) / 1000));
    c = await cpuMs(pid);
    const tpsC = await pgbench(p.ports.pg, token, ['-C']);
    rows[name].tpsConnect.push(tpsC);
    rows[name].cpuMsPer1kConnect.push(((await cpuMs(pid)) - c) / ((tpsC * SECONDS) / 1000));
    c = await cpuMs(pid);
    const s = await sshCat(p.ports.ssh, token);
    // Let the seal (and with evidence the checkpoint) happen inside the measured CPU.
    await new Promise((r) => setTimeout(r, 1500));
    rows[name].mbps.push(bytes / 1024 / 1024 / s);
    rows[name].cpuMsPerMB.push(((await cpuMs(pid)) - c) / (bytes / 1024 / 1024));
  }
}
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]! : NaN);
const fmt = (xs: number[], d = 0) => (xs.length ? `${median(xs).toFixed(d)} (${xs.map((x) => x.toFixed(d)).join(', ')})` : '-');
console.log(`pgbench -S -c ${CLIENTS} -j 2 -T ${SECONDS}, scale 5; ssh cat of ${(bytes / 1024 / 1024).toFixed(0)} MiB; ${ROUNDS} rounds; median (each round)`);
console.log('| path | TPS | TPS with -C (session per tx) | SSH MB/s | CPU ms / 1k tx | CPU ms / 1k sessions (-C) | CPU ms / MiB |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(rows)) {
  console.log(`| ${name} | ${fmt(r.tps)} | ${fmt(r.tpsConnect)} | ${fmt(r.mbps, 1)} | ${fmt(r.cpuMsPer1kTx, 1)} | ${fmt(r.cpuMsPer1kConnect, 0)} | ${fmt(r.cpuMsPerMB, 2)} |`);
}
const audit = (await readFile(join(on.p.dir, 'data', 'audit.log'), 'utf8')).split('\n').filter(Boolean).length;
const witnessed = JSON.parse(await readFile(join(on.p.dir, 'data', 'evidence', 'checkpoints.jsonl'), 'utf8').then((t) => t.trim().split('\n').at(-1)!));
console.log(`evidence on: ${audit} audit entries, newest local checkpoint covers ${witnessed.size}`);
await on.p.stop();
await off.p.stop();
await sshd.close();
psqlAdmin(`DROP DATABASE IF EXISTS ${DB}`);
await rm(work, { recursive: true, force: true });
