import { join } from 'node:path';
import type { EvidenceConfig } from '../../config/config.types.js';
import type { RecordingCatalog } from '../catalog.js';
import type { EvidenceSources } from './evidence-verify.js';
import { loadSigningKey, readPublicKeys, type Keyring } from './signing-key.js';
import { TransparencyLog } from './transparency-log.js';
import { FileWitness, openWitness, type Witness } from './witness.js';

/** data_dir/evidence: the proxy's own copy of every checkpoint. */
export const localCheckpoints = (dataDir: string) => new FileWitness(join(dataDir, 'evidence'), 'data_dir/evidence');

/** The trusted keys: the current signing key and `previous_public_keys`. */
export async function evidenceKeyring(cfg: EvidenceConfig, current: Keyring): Promise<Keyring> {
  const ring: Keyring = new Map(current);
  for (const [id, k] of await readPublicKeys(cfg.previousPublicKeys)) ring.set(id, k);
  return ring;
}

/** Builds the running transparency log from `evidence:` (creates the signing key when missing). */
export async function openTransparencyLog(cfg: EvidenceConfig, dataDir: string, onWitnessError: (w: Witness, err: Error) => void): Promise<TransparencyLog> {
  const key = await loadSigningKey(cfg.signingKeyFile, { create: true });
  const keyring = await evidenceKeyring(cfg, new Map([[key.keyId, key.publicKey]]));
  return new TransparencyLog({
    key, keyring, local: localCheckpoints(dataDir), witnesses: cfg.witness ? [openWitness(cfg.witness)] : [],
    origin: cfg.origin, intervalMs: cfg.checkpointIntervalMs, onWitnessError,
  });
}

/** What verification reads, for a running proxy or for the CLI on the host. */
export function evidenceSources(auditPath: string, recordings: RecordingCatalog, log: TransparencyLog | undefined, cfg: EvidenceConfig | undefined): EvidenceSources {
  return {
    auditPath, recordings,
    signed: log && cfg ? { keyring: log.keyring, local: log.local, witnesses: log.witnesses, origin: cfg.origin } : undefined,
  };
}
