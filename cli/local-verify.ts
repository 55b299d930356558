import { join } from 'node:path';
import { loadConfig } from '../config/config.js';
import { RecordingCatalog } from '../recorder/catalog.js';
import { verifyAuditEvidence, verifyRecordingEvidence, type EvidenceSources } from '../recorder/evidence/evidence-verify.js';
import { evidenceKeyring, localCheckpoints } from '../recorder/evidence/open-evidence.js';
import { loadSigningKey } from '../recorder/evidence/signing-key.js';
import { openWitness } from '../recorder/evidence/witness.js';
import { CliError } from './api-client.js';
import { auditVerifyText, recordingVerifyText } from './verify-text.js';

/**
 * `pam audit verify --local` / `pam recordings verify ID --local`: the same checks as the API,
 * on this host's data_dir, witness and keys from the config, with or without a running proxy
 * (a proxy refuses to start on a log that contradicts its witness; the auditor still needs to
 * see what broke).
 */
async function sources(configFile: string): Promise<EvidenceSources> {
  const config = loadConfig(configFile);
  const recordings = RecordingCatalog.reader(join(config.dataDir, 'recordings'));
  const auditPath = join(config.dataDir, 'audit.log');
  const ev = config.evidence;
  if (!ev) return { auditPath, recordings };
  const key = await loadSigningKey(ev.signingKeyFile, { create: false }).catch((err: Error) => {
    throw new CliError(err.message);
  });
  return {
    auditPath, recordings,
    signed: {
      keyring: await evidenceKeyring(ev, new Map([[key.keyId, key.publicKey]])),
      local: localCheckpoints(config.dataDir), witnesses: ev.witness ? [openWitness(ev.witness)] : [], origin: ev.origin,
    },
  };
}

export async function localAuditVerify(configFile: string, json: boolean): Promise<void> {
  const r = await verifyAuditEvidence(await sources(configFile));
  process.stdout.write(json ? JSON.stringify(r) + '\n' : auditVerifyText(r));
  if (!r.ok) process.exitCode = 1;
}

export async function localRecordingVerify(configFile: string, id: string, json: boolean): Promise<void> {
  if (!RecordingCatalog.isId(id)) throw new CliError(`no recording ${JSON.stringify(id).slice(0, 80)}`, 2);
  const r = await verifyRecordingEvidence(await sources(configFile), id);
  process.stdout.write(json ? JSON.stringify(r) + '\n' : recordingVerifyText(r));
  if (r.ok === false) process.exitCode = 1;
}
