/**
 * A witness that stops taking checkpoints while the proxy runs (here: its directory is replaced
 * by a regular file) is reported and audited, and nothing else stops: the local store still
 * gets every checkpoint. One that cannot be read at start-up refuses the start (the log cannot
 * be checked against it). The real control plane, as `pam serve` builds it.
 */
import { afterAll, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { openControlPlane } from '../../app/control-plane.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import type { AuditEvent } from '../../recorder/audit.types.js';

/** Filler entries for the log under test, outside the event schema on purpose. */
const raw = (e: Record<string, unknown> & { type: string }) => e as unknown as AuditEvent;

let outside: string;
let cp: TestControlPlane | undefined;
afterAll(async () => {
  await cp?.close();
  await rm(outside, { recursive: true, force: true });
});

it('a failing witness is audited once, and the checkpoints still reach data_dir/evidence', async () => {
  outside = await mkdtemp(join(tmpdir(), `pam-witness-${process.pid}-`));
  const witness = join(outside, 'witness');
  cp = await startControlPlane({
    targets: [],
    overrides: { evidence: { signingKeyFile: join(outside, 'evidence.key'), witness: `file://${witness}`, previousPublicKeys: [], checkpointIntervalMs: 60_000, origin: 'w' } },
  });
  await cp.deps.audit.append(raw({ type: 'test.entry', i: 0 }));
  await cp.deps.evidence!.checkpoint();
  expect(JSON.parse(await readFile(join(witness, 'latest.json'), 'utf8')).size).toBe(cp.deps.evidence!.tree.size);
  await rm(witness, { recursive: true });
  await writeFile(witness, 'not a directory any more');
  for (let i = 1; i < 4; i++) {
    await cp.deps.audit.append(raw({ type: 'test.entry', i }));
    await cp.deps.evidence!.checkpoint();
  }
  const failed = (await cp.audit()).filter((e) => e.type === 'evidence.witness_failed');
  // The fault fired, and was reported once (not once per checkpoint).
  expect(failed).toHaveLength(1);
  expect(String(failed[0]!.error)).toMatch(/ENOTDIR|not a directory/i);
  const local = (await readFile(join(cp.dataDir, 'evidence', 'checkpoints.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { size: number });
  expect(local.length).toBeGreaterThanOrEqual(4);
  expect(local.at(-1)!.size).toBeGreaterThanOrEqual(4);

  // A restart with that witness is refused: the log cannot be checked against it.
  const { config, dataDir } = cp;
  await cp.deps.close();
  cp = undefined;
  await expect(openControlPlane(config)).rejects.toThrow(/witness .* is unreadable/);
  await rm(dataDir, { recursive: true, force: true });
});
