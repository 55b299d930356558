import { readAuditLines } from '../audit-log.js';
import { fileSha256 } from '../verify.js';
import type { RecordingCatalog } from '../catalog.js';
import type { SignedCheckpoint } from './checkpoint.js';
import { checkpointProblem } from './checkpoint.js';
import { inclusionProof, leafHash, verifyInclusion } from './merkle.js';
import type { Keyring } from './signing-key.js';
import type { Witness } from './witness.js';
import { verifyLog, type CheckpointSource, type LogVerdict, type Problem } from './verify-log.js';

/** What verification reads: the log, the recordings, the checkpoints and the trusted keys. */
export interface EvidenceSources {
  auditPath: string;
  recordings: RecordingCatalog;
  /** Absent when no `evidence` section is configured: only the chain and the seals are checked. */
  signed?: { keyring: Keyring; local: Witness; witnesses: Witness[]; origin: string };
}

export interface AuditVerdict extends LogVerdict {
  /** Recordings whose seal entries were checked against their files. */
  recordings: number;
  /** Set when nothing is signed: a writer of data_dir could rewrite everything undetected. */
  unsignedWarning?: string;
}

/** A `recording.sealed` audit entry: the recording's SHA-256 as the proxy produced it. */
export interface SealEntry {
  index: number;
  line: string;
  recording: string;
  sha256: string;
  format: 'asciicast' | 'raw' | 'jsonl';
  bytes?: number;
  catalog_sha256?: string;
}

export function findSeals(lines: readonly string[]): SealEntry[] {
  const out: SealEntry[] = [];
  lines.forEach((line, index) => {
    // Cheap test first: most lines are not seals.
    if (!line.includes('"recording.sealed"')) return;
    try {
      const e = JSON.parse(line) as Record<string, unknown>;
      if (e.type !== 'recording.sealed' || typeof e.recording !== 'string' || typeof e.sha256 !== 'string') return;
      if (e.format !== 'asciicast' && e.format !== 'raw' && e.format !== 'jsonl') return;
      out.push({ index, line, recording: e.recording, sha256: e.sha256, format: e.format, bytes: e.bytes as number | undefined, catalog_sha256: e.catalog_sha256 as string | undefined });
    } catch {
      // the chain check reports unparsable lines
    }
  });
  return out;
}

/** SHA-256 of a file, or undefined when it does not exist. */
export async function sha256File(path: string): Promise<string | undefined> {
  try {
    return await fileSha256(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function sources(s: NonNullable<EvidenceSources['signed']>): Promise<CheckpointSource[]> {
  const out: CheckpointSource[] = [];
  for (const w of [...s.witnesses, s.local]) out.push({ name: w.name, ...(await w.read()) });
  return out;
}

async function sealProblems(seal: SealEntry, catalog: RecordingCatalog): Promise<Problem[]> {
  const where = `audit.log entry ${seal.index + 1}`;
  const meta = await catalog.get(seal.recording);
  const problems: Problem[] = [];
  if (!meta) problems.push({ what: `recording ${seal.recording} has a seal but no catalog entry (deleted)`, where });
  const actual = await sha256File(catalog.dataPath(seal.recording, seal.format));
  if (actual === undefined) problems.push({ what: `recording ${seal.recording} is missing (sealed, then deleted)`, where });
  else if (actual !== seal.sha256) problems.push({ what: `recording ${seal.recording} was changed: sealed sha256 ${seal.sha256}, file is ${actual}`, where });
  if (meta && meta.sha256 !== undefined && meta.sha256 !== seal.sha256) problems.push({ what: `catalog entry of ${seal.recording} names sha256 ${meta.sha256}, the seal ${seal.sha256}`, where });
  return problems;
}

/** `pam audit verify`: the log against its checkpoints, and every sealed recording against its seal. */
export async function verifyAuditEvidence(s: EvidenceSources): Promise<AuditVerdict> {
  const lines = await readAuditLines(s.auditPath);
  const base: LogVerdict = s.signed
    ? verifyLog(lines, await sources(s.signed), s.signed.keyring, s.signed.origin)
    : verifyLog(lines, [], new Map(), '');
  // Without evidence there are no checkpoints to miss: only the chain speaks.
  const problems = s.signed ? base.problems : base.problems.filter((p) => !p.what.startsWith('no signed checkpoint'));
  const seals = findSeals(lines);
  for (const seal of seals) problems.push(...(await sealProblems(seal, s.recordings)));
  return {
    ...base, ok: problems.length === 0, problems, recordings: seals.length,
    unsignedWarning: s.signed ? undefined : 'evidence is unsigned (no evidence section in the config): a writer of data_dir can rewrite the log and recordings undetected',
  };
}

export interface RecordingVerdict {
  id: string;
  status?: string;
  /** true intact, false tampered or unprovable, null not sealed yet (live or interrupted). */
  ok: boolean | null;
  sealed: string | null;
  actual: string | null;
  why?: string;
  seal_entry?: number;
  checkpoint?: { size: number; time: string; key_id: string; by: string };
}

/** The newest genuine checkpoint that covers leaf `index`. */
export async function coveringCheckpoint(s: NonNullable<EvidenceSources['signed']>, index: number): Promise<{ cp: SignedCheckpoint; by: string } | undefined> {
  let best: { cp: SignedCheckpoint; by: string } | undefined;
  for (const src of await sources(s)) {
    for (const cp of src.checkpoints) {
      if (cp.origin !== s.origin || cp.size <= index || checkpointProblem(cp, s.keyring)) continue;
      if (!best || cp.size > best.cp.size) best = { cp, by: src.name };
    }
  }
  return best;
}

/**
 * `pam recordings verify ID`: the file's bytes against the seal in the signed log, never against
 * the catalog's own `sha256` (whoever edits the file can edit the catalog too).
 */
export async function verifyRecordingEvidence(s: EvidenceSources, id: string): Promise<RecordingVerdict> {
  const meta = await s.recordings.get(id);
  const lines = await readAuditLines(s.auditPath);
  const seal = findSeals(lines).filter((x) => x.recording === id).at(-1);
  const format = seal?.format ?? meta?.format;
  const actual = format ? (await sha256File(s.recordings.dataPath(id, format))) ?? null : null;
  const out: RecordingVerdict = { id, status: meta?.status, sealed: seal?.sha256 ?? null, actual, seal_entry: seal ? seal.index + 1 : undefined, ok: false };
  if (!seal) {
    if (!meta) return { ...out, why: 'no such recording, and no seal for it in the audit log' };
    if (meta.status === 'live' || meta.status === 'interrupted') return { ...out, ok: null, why: `not sealed (${meta.status})` };
    return { ...out, why: 'the recording ended but the audit log holds no seal for it' };
  }
  if (s.signed) {
    const cover = await coveringCheckpoint(s.signed, seal.index);
    if (!cover) return { ...out, why: `the seal (audit.log entry ${seal.index + 1}) is not covered by any signed checkpoint` };
    const leaves = lines.slice(0, cover.cp.size).map((l) => leafHash(l));
    if (leaves.length < cover.cp.size || !verifyInclusion(leaves[seal.index]!, seal.index, cover.cp.size, inclusionProof(leaves, seal.index, cover.cp.size), Buffer.from(cover.cp.root, 'hex'))) {
      return { ...out, why: `the audit log no longer matches the checkpoint of ${cover.cp.size} entries signed at ${cover.cp.time}: the seal cannot be proven (run pam audit verify)` };
    }
    out.checkpoint = { size: cover.cp.size, time: cover.cp.time, key_id: cover.cp.key_id, by: cover.by };
  }
  if (actual === null) return { ...out, why: `the recording file is missing (sealed at audit.log entry ${seal.index + 1})` };
  if (actual !== seal.sha256) return { ...out, why: `the recording's bytes changed: sealed sha256 ${seal.sha256}, file is ${actual}` };
  return { ...out, ok: true };
}
