/**
 * The SQL policy's cost per statement on the relay's hot path, in-process (no sockets): the
 * broker's policy seam (sqlPolicyCheck → engine.evaluate → classifySql) with the control
 * plane's real engine, for pgbench -S texts (a fresh constant each time), against a parse per
 * statement (what an exact-text cache gives for such texts).
 *
 *   node bin/run-ts.js bench/pg-policy-cost.ts [--n 200000]
 */
import { parseSync } from 'libpg-query';
import { startControlPlane } from '../test/helpers/control-plane.js';
import { sqlPolicyCheck } from '../proxy/postgres/policy-seam.js';

const i = process.argv.indexOf('--n');
const N = i > 0 ? Number(process.argv[i + 1]) : 200_000;

const cp = await startControlPlane({
  targets: [{ name: 'bench', protocol: 'postgres', host: '127.0.0.1', port: 5432, database: 'x', tls: 'disable', logins: { postgres: { secret: 's' } }, defaultAction: 'allow' }],
  roles: `command_rules:
  - { name: no-drop, protocol: postgres, match: { statements: [DropStmt, TruncateStmt] }, action: deny }
  - { name: no-file-functions, protocol: postgres, match: { functions: [pg_read_file, lo_export] }, action: deny }
  - { name: no-secrets, protocol: postgres, match: { relations: ["*.secrets"] }, action: deny }
`,
});
try {
  const identity = await cp.deps.identity.verify(await cp.token('bench-user'));
  const check = sqlPolicyCheck(cp.deps, identity, 'bench', 'postgres', () => undefined);
  const text = (k: number) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${(k * 7919) % 1_000_000 + 1};`;
  const time = (f: (k: number) => void, n: number) => {
    for (let k = 0; k < Math.min(n, 20_000); k++) f(k + 10_000_000); // warm-up
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < n; k++) f(k);
    return Number(process.hrtime.bigint() - t0) / 1000 / n;
  };
  const seam = time((k) => {
    if (check(text(k)).action !== 'allow') throw new Error('unexpected verdict');
  }, N);
  const quoted = time((k) => void check(`SELECT abalance FROM pgbench_accounts WHERE aid = ${k} AND 'x' = 'x';`), Math.min(N, 20_000));
  const parse = time((k) => void parseSync(text(k)), Math.min(N, 20_000));
  console.log(`policy seam, pgbench -S text (numbers folded, cache hit): ${seam.toFixed(2)} µs/statement`);
  console.log(`policy seam, same text with a quoted literal (not folded: parse each time): ${quoted.toFixed(2)} µs/statement`);
  console.log(`libpg-query parseSync alone: ${parse.toFixed(2)} µs/statement`);
} finally {
  await cp.close();
}
