import { checkAuditChain } from '../audit-log.js';
import { checkpointProblem, type SignedCheckpoint } from './checkpoint.js';
import { MerkleTree, leafHash } from './merkle.js';
import type { Keyring } from './signing-key.js';

/** One thing that is wrong, and where: what a court exhibit would quote. */
export interface Problem {
  what: string;
  where?: string;
}

/** Where checkpoints came from (a witness, or the local store in data_dir). */
export interface CheckpointSource {
  name: string;
  checkpoints: SignedCheckpoint[];
  unreadable: number[];
}

export interface LogVerdict {
  ok: boolean;
  entries: number;
  /** The newest checkpoint that verifies and that the log matches. */
  signed?: { size: number; time: string; key_id: string; by: string[] };
  /** Entries after the newest matching checkpoint (not signed yet: a running proxy signs within seconds). */
  unsigned: number;
  problems: Problem[];
}

/**
 * Checks the audit log's lines against every signed checkpoint (RFC 9162 roots of prefixes):
 * the hash chain, each checkpoint's signature, that the log still has every entry a checkpoint
 * counted (truncation, deletion), and that each prefix has the signed root (edit, removal,
 * insertion, reorder, even with the chain recomputed). Pure: the caller reads the files.
 */
export function verifyLog(lines: readonly string[], sources: CheckpointSource[], keyring: Keyring, origin: string): LogVerdict {
  const problems: Problem[] = [];
  const chain = checkAuditChain(lines);
  if (!chain.ok) problems.push({ what: `hash chain broken: ${chain.why}`, where: `audit.log entry ${chain.brokenAt}` });

  const valid = new Map<number, { cp: SignedCheckpoint; by: string[] }[]>();
  for (const src of sources) {
    for (const n of src.unreadable) problems.push({ what: 'a checkpoint line does not parse', where: `${src.name} line ${n}` });
    for (const cp of src.checkpoints) {
      if (cp.origin !== origin) continue;
      const why = checkpointProblem(cp, keyring);
      if (why) {
        problems.push({ what: `checkpoint of ${cp.size} entries (${cp.time}) is not genuine: ${why}`, where: src.name });
        continue;
      }
      const same = valid.get(cp.size) ?? [];
      const twin = same.find((s) => s.cp.root === cp.root);
      if (twin) twin.by.push(src.name);
      else same.push({ cp, by: [src.name] });
      valid.set(cp.size, same);
    }
  }
  for (const [size, list] of valid) {
    if (list.length > 1) problems.push({ what: `two different signed roots for the first ${size} entries (the log forked)`, where: list.map((l) => l.by.join(', ')).join(' / ') });
  }

  const sizes = [...valid.keys()].sort((a, b) => a - b);
  const tooLong = sizes.filter((s) => s > lines.length);
  if (tooLong.length > 0) {
    const max = tooLong.at(-1)!;
    const cp = valid.get(max)![0]!;
    problems.push({
      what: `the log has ${lines.length} entries but a checkpoint signed at ${cp.cp.time} covers ${max}: entries ${lines.length + 1}..${max} are gone (truncated or deleted)`,
      where: cp.by.join(', '),
    });
  }

  // One pass over the leaves; the root at each checkpointed size is read off the compact range.
  const tree = new MerkleTree();
  const roots = new Map<number, string>();
  let next = 0;
  const within = sizes.filter((s) => s <= lines.length);
  if (within[0] === 0) roots.set(0, tree.root().toString('hex'));
  for (let i = 0; i < lines.length && next < within.length; i++) {
    tree.append(leafHash(lines[i]!));
    while (next < within.length && within[next] === tree.size) roots.set(within[next++]!, tree.root().toString('hex'));
  }
  let lastGood = 0;
  let signed: LogVerdict['signed'];
  let firstBad: { size: number; cp: SignedCheckpoint; by: string[] } | undefined;
  for (const size of within) {
    const match = valid.get(size)!.find((v) => v.cp.root === roots.get(size));
    if (match && !firstBad) {
      lastGood = size;
      signed = { size, time: match.cp.time, key_id: match.cp.key_id, by: match.by };
    } else if (!match && !firstBad) {
      firstBad = { size, ...valid.get(size)![0]! };
    }
  }
  if (firstBad) {
    problems.push({
      what: `entries ${lastGood + 1}..${firstBad.size} do not match the checkpoint of ${firstBad.size} entries signed at ${firstBad.cp.time}: an entry there was changed, removed, inserted or reordered`,
      where: `audit.log entries ${lastGood + 1}..${firstBad.size} (checkpoint from ${firstBad.by.join(', ')})`,
    });
  }
  if (sizes.length === 0 && lines.length > 0) problems.push({ what: 'no signed checkpoint covers this log (none found in the witness or data_dir)' });
  return { ok: problems.length === 0, entries: lines.length, signed, unsigned: lines.length - (signed?.size ?? 0), problems };
}
