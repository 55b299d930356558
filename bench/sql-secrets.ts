/**
 * Per-statement cost of the password redaction (policies/sql-secrets.ts) on the texts pgbench
 * sends, and on a text that holds a password. CPU per call from process.cpuUsage.
 * Run: node bin/run-ts.js bench/sql-secrets.ts
 */
import { redactSqlSecrets } from '../policies/sql-secrets.js';

const texts = [
  'UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 87123;',
  'SELECT abalance FROM pgbench_accounts WHERE aid = 87123;',
  'UPDATE pgbench_tellers SET tbalance = tbalance + -4321 WHERE tid = 7;',
  'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 87123, -4321, CURRENT_TIMESTAMP);',
];
function run(label: string, list: string[], n: number): void {
  let sink = 0;
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) sink += redactSqlSecrets(list[i % list.length]!).length;
  const d = process.cpuUsage(t0);
  console.log(`${label}: ${(((d.user + d.system) * 1000) / n).toFixed(1)} ns CPU per statement (${n} calls, sink ${sink % 7})`);
}
run('pgbench texts (no password)', texts, 2_000_000);
run("ALTER ROLE … PASSWORD '…'", ["ALTER ROLE app PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi'"], 200_000);
