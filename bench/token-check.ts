/**
 * What the offboarding refusal adds to every token check: `refusingVerifier` (one store read per
 * identifier: subject, email, user name) over the dev issuer's verifier, against the bare
 * verifier, with the embedded store and with Redis (db 14, cleared). In-process micro-benchmark:
 * the step is a function call plus store reads, so no listener is involved; CPU is this
 * process's user+system time from /proc/self/stat per 1,000 checks.
 *
 *   npm run bench token-check -- --n 5000
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDevIssuer } from '../access/dev-issuer.js';
import { openStore } from '../access/store.js';
import { refusingVerifier } from '../access/offboarding.js';
import type { IdentityVerifier } from '../access/identity.types.js';

const n = Number(process.argv[process.argv.indexOf('--n') + 1] || 5000);
const cpuMs = () => {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, clock ticks of 10 ms
};

async function measure(name: string, v: IdentityVerifier, token: string): Promise<void> {
  for (let i = 0; i < 200; i++) await v.verify(token); // warm-up
  const c0 = cpuMs();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await v.verify(token);
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = cpuMs() - c0;
  console.log(`${name.padEnd(28)} ${(wall * 1000 / n).toFixed(1).padStart(7)} µs/check wall  ${(cpu * 1000 / n).toFixed(1).padStart(7)} ms CPU per 1,000`);
}

const dir = await mkdtemp(join(tmpdir(), 'pam-bench-tc-'));
try {
  const issuer = await loadDevIssuer(dir, 'pam-proxy');
  const token = await issuer.issue('alice', ['admins'], { email: 'alice@example.com' });
  console.log(`token-check: ${n} checks each (2 shared cores: figures are indicative)`);
  await measure('bare verifier', issuer.verifier, token);
  const embedded = await openStore('embedded', dir);
  // Only `refusal` is used: the verifier asks the offboarding records and nothing else.
  const { OffboardingService } = await import('../access/offboarding.js');
  const off = (store: typeof embedded) => new OffboardingService({ store } as never);
  await measure('+ refusal, embedded store', refusingVerifier(issuer.verifier, off(embedded)), token);
  await embedded.close();
  const redis = await openStore('redis://127.0.0.1:6379/14', dir);
  await measure('+ refusal, Redis store', refusingVerifier(issuer.verifier, off(redis)), token);
  await redis.close();
  // Again at the end: the first run also pays for warming up.
  await measure('bare verifier (again)', issuer.verifier, token);
} finally {
  await rm(dir, { recursive: true, force: true });
}
