import { readAuditLines } from '../audit-log.js';
import type { EvidencePackage } from './bundle.js';
import { findSeals, verifyRecordingEvidence, type EvidenceSources } from './evidence-verify.js';
import { leafHash } from './merkle.js';
import type { TransparencyLog } from './transparency-log.js';

/** A bundle cannot be made: the message says why (the route answers 409 with it). */
export class BundleRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleRefused';
  }
}

/**
 * Everything a bundle needs but the recording's bytes. Refuses to package evidence that does
 * not verify here and now: a bundle is a claim, and the proxy does not sign off on a broken one.
 */
export async function evidencePackage(tlog: TransparencyLog | undefined, sources: EvidenceSources, id: string): Promise<EvidencePackage> {
  if (!tlog) throw new BundleRefused('evidence is unsigned (no evidence section in the config): a bundle would prove nothing');
  const cp = await tlog.checkpoint();
  const verdict = await verifyRecordingEvidence(sources, id);
  if (verdict.ok !== true) throw new BundleRefused(`recording ${id} does not verify: ${verdict.why}`);
  const lines = await readAuditLines(sources.auditPath);
  const seal = findSeals(lines).filter((s) => s.recording === id).at(-1)!;
  if (!cp || cp.size <= seal.index) throw new BundleRefused('the seal is not covered by a checkpoint yet');
  // The proof comes from the tree as signed; the leaf on disk must be the one that was signed.
  const signedLeaf = tlog.tree.leaf(seal.index);
  if (!signedLeaf || !signedLeaf.equals(leafHash(seal.line))) throw new BundleRefused(`audit log entry ${seal.index + 1} on disk is not the entry that was signed`);
  const catalog = await sources.recordings.entryText(id);
  if (catalog === undefined) throw new BundleRefused(`recording ${id} has no catalog entry`);
  return {
    recording: id, format: seal.format, seal: seal.line, leaf_index: seal.index, tree_size: cp.size,
    proof: tlog.tree.inclusionProof(seal.index, cp.size).map((h) => h.toString('hex')),
    checkpoint: cp, catalog, public_key: tlog.publicPem,
  };
}
