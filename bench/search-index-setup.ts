/**
 * Synthetic recordings in the real formats for bench/search-index.ts: `ID.meta.json` as the
 * catalog writes it, SSH sessions as asciicast v2 (`o` output lines of words, `i` typed command
 * lines with Enter, `m` markers for exec, exit status and denials as the broker writes them) and
 * Postgres sessions as the query log's JSON lines (statements with tag, rows, errors, verdicts).
 * Deterministic (seeded), so two runs index the same text.
 */
import { mkdirSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One recording in the middle prints this, and nothing else does. */
export const RARE_WORD = 'xylophone4711';
/** Printed in every SSH recording, many times. */
export const COMMON_WORD = 'error';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'sor', 'tan', 'vel', 'dri', 'po', 'quen', 'ra', 'shu', 'ti', 'wex', 'zo', 'bri', 'gal', 'hum'];
/** About 5,000 distinct words, drawn with a skew (a few common, most rare), like log output. */
function vocabulary(r: () => number): string[] {
  const words = new Set<string>(['the', 'error', 'warning', 'ok', 'done', 'failed', 'started', 'stopped', 'nginx', 'postgres', 'kernel', 'disk', 'user', 'root', 'systemd']);
  while (words.size < 5000) {
    const n = 2 + Math.floor(r() * 3);
    let w = '';
    for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(r() * SYLLABLES.length)];
    words.add(w);
  }
  return [...words];
}

const COMMANDS = ['ls -la /var/log', 'systemctl status nginx', 'tail -n 50 /var/log/syslog', 'df -h', 'ps aux', 'journalctl -u postgres', 'cat /etc/hosts', 'uptime', 'grep -r error /var/log/app', 'systemctl stop nginx', 'sudo systemctl restart nginx'];
const SQL = ['SELECT * FROM orders WHERE id = $1', 'UPDATE orders SET paid = true WHERE id = 42', "SELECT count(*) FROM users WHERE email LIKE '%@example.com'", 'DELETE FROM sessions WHERE expires < now()', 'INSERT INTO audit(note) VALUES ($1)', 'DROP TABLE staging_import'];

export interface GeneratedSet {
  dir: string;
  recordings: number;
  bytes: number;
  rareRecording: string;
}

/**
 * Writes `count` recordings of about `kb` KiB each into `dir` (a recordings folder), started
 * evenly over the last `spanDays` days, 80 % SSH and 20 % Postgres. Users u0…u49, targets
 * prod-web-0…9, stage-db-0…4.
 */
export function generate(dir: string, count: number, kb: number, spanDays: number, seed = 15): GeneratedSet {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const r = rng(seed);
  const words = vocabulary(r);
  const word = () => words[Math.floor(Math.pow(r(), 3) * words.length)]!;
  const now = Date.now();
  const first = now - spanDays * 86400e3;
  const step = (spanDays * 86400e3) / count;
  let bytes = 0;
  let rareRecording = '';
  for (let i = 0; i < count; i++) {
    const startMs = Math.floor(first + i * step);
    const id = `${startMs.toString(36).padStart(9, '0')}-${(Math.floor(r() * 0xffffffff) >>> 0).toString(16).padStart(8, '0')}`;
    const ssh = i % 5 !== 4;
    const user = `u${Math.floor(r() * 50)}`;
    const target = ssh ? `prod-web-${Math.floor(r() * 10)}` : `stage-db-${Math.floor(r() * 5)}`;
    const path = join(dir, `${id}.${ssh ? 'cast' : 'jsonl'}`);
    const fd = openSync(path, 'w', 0o600);
    let size = 0;
    let denials = 0;
    const put = (line: string) => {
      const b = Buffer.from(line + '\n');
      writeSync(fd, b);
      size += b.length;
    };
    const rare = i === Math.floor(count / 2);
    if (rare) rareRecording = id;
    let t = 0;
    if (ssh) {
      put(JSON.stringify({ version: 2, width: 120, height: 40, timestamp: Math.floor(startMs / 1000), env: { TERM: 'xterm-256color' }, title: `${user} as root@${target}` }));
      put(JSON.stringify([0.5, 'm', 'shell']));
      let n = 0;
      while (size < kb * 1024) {
        t += 0.2 + r() * 3;
        if (n++ % 25 === 0) {
          const cmd = COMMANDS[Math.floor(r() * COMMANDS.length)]!;
          put(JSON.stringify([+t.toFixed(6), 'i', `${cmd}\r`]));
          if (cmd === 'systemctl stop nginx') {
            put(JSON.stringify([+(t + 0.01).toFixed(6), 'm', `denied: ${cmd}: Stopping services is blocked.`]));
            denials++;
          }
          continue;
        }
        const lines: string[] = [];
        for (let l = 0, L = 1 + Math.floor(r() * 4); l < L; l++) {
          const ws: string[] = [];
          for (let k = 0, K = 6 + Math.floor(r() * 10); k < K; k++) ws.push(word());
          if (r() < 0.2) ws.splice(2, 0, COMMON_WORD);
          lines.push(`\u001b[32m${new Date(startMs + t * 1000).toISOString()}\u001b[0m ${ws.join(' ')}`);
        }
        if (rare && n === 20) lines.push(`the ${RARE_WORD} printed once`);
        put(JSON.stringify([+t.toFixed(6), 'o', lines.join('\r\n') + '\r\n']));
      }
      put(JSON.stringify([+(t + 1).toFixed(6), 'm', 'exit status 0']));
      put(JSON.stringify([+(t + 1).toFixed(6), 'm', 'end: client disconnected']));
    } else {
      const iso = (s: number) => new Date(startMs + s * 1000).toISOString();
      put(JSON.stringify({ t: iso(0), type: 'start', user, subject: user, login: 'app', target, database: 'shop', client: '10.0.0.7:51234' }));
      while (size < kb * 1024) {
        t += 0.05 + r() * 2;
        const sql = SQL[Math.floor(r() * SQL.length)]!;
        const verb = sql.split(' ')[0]!;
        if (verb === 'DROP') {
          denials++;
          put(`{"t":"${iso(t)}","type":"statement","protocol":"simple","sql":${JSON.stringify(sql)},"duration_ms":0.2,"error":{"sqlstate":"42501","message":"DROP is blocked."},"verdict":{"action":"deny","rule":"no-drop"}}`);
        } else {
          const rows = Math.floor(r() * 100);
          put(`{"t":"${iso(t)}","type":"statement","protocol":"extended","sql":${JSON.stringify(sql)},"params":["${word()}"],"duration_ms":1.3,"tag":"${verb === 'INSERT' ? 'INSERT 0 1' : `${verb} ${rows}`}","rows":${rows},"verdict":{"action":"allow"}}`);
        }
      }
      put(JSON.stringify({ t: iso(t + 1), type: 'end', reason: 'client disconnected' }));
    }
    closeSync(fd);
    bytes += size;
    const meta = {
      id, protocol: ssh ? 'ssh' : 'postgres', user, subject: user, login: ssh ? 'root' : 'app', target, ...(ssh ? {} : { database: 'shop' }),
      clientAddress: '10.0.0.7', format: ssh ? 'asciicast' : 'jsonl', start: new Date(startMs).toISOString(), end: new Date(startMs + (t + 1) * 1000).toISOString(),
      endReason: 'client disconnected', bytes: size, status: 'ended',
    };
    writeFileSync(join(dir, `${id}.meta.json`), JSON.stringify(meta), { mode: 0o600 });
  }
  return { dir, recordings: count, bytes, rareRecording };
}
