import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { RecordingMeta } from '../recording.types.js';
import { renderViewer, playerFiles } from './bundle-viewer.js';
import { checkpointProblem, parseCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import { leafHash, verifyInclusion } from './merkle.js';
import { keyIdOf, parsePublicKeys, publicPemOf, type Keyring } from './signing-key.js';
import type { Problem } from './verify-log.js';

/**
 * An evidence bundle: a folder an auditor carries away.
 *
 *   recording.cast | recording.jsonl   the recording's bytes
 *   catalog.json                       its catalog entry, as sealed
 *   seal.json                          the `recording.sealed` audit entry (one leaf, exact bytes)
 *   proof.json                         RFC 9162 inclusion proof of that leaf
 *   checkpoint.json                    the signed checkpoint the proof ends in
 *   public-key.pem                     the key that signed it (trust the one you got elsewhere)
 *   index.html, recording.js, player/  offline viewer, regenerated and compared by verify
 */

/** What the proxy hands out for a bundle (GET /api/v1/recordings/:id/evidence); the bytes come separately. */
export interface EvidencePackage {
  recording: string;
  format: RecordingMeta['format'];
  seal: string;
  leaf_index: number;
  tree_size: number;
  proof: string[];
  checkpoint: SignedCheckpoint;
  catalog: string;
  public_key: string;
}

export const dataName = (format: RecordingMeta['format']) => (format === 'asciicast' ? 'recording.cast' : format === 'raw' ? 'recording.raw' : 'recording.jsonl');

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function viewerFor(recording: Buffer, catalog: string, seal: Record<string, unknown>, pkg: { leaf_index: number; checkpoint: SignedCheckpoint }): Record<string, string> {
  const meta = JSON.parse(catalog) as RecordingMeta;
  return renderViewer(recording, {
    meta, sha256: String(seal.sha256), sealEntry: pkg.leaf_index + 1,
    checkpoint: { size: pkg.checkpoint.size, time: pkg.checkpoint.time, key_id: pkg.checkpoint.key_id },
  });
}

/** Writes a bundle into `dir` (which must be empty or new). `recording` is the data file's path. */
export async function writeBundle(dir: string, pkg: EvidencePackage, recordingPath: string): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const existing = await readdir(dir);
  if (existing.length > 0) throw new Error(`${dir} is not empty`);
  const recording = await readFile(recordingPath);
  const seal = JSON.parse(pkg.seal) as Record<string, unknown>;
  const files: Record<string, string | Buffer> = {
    [dataName(pkg.format)]: recording,
    'catalog.json': pkg.catalog,
    'seal.json': pkg.seal,
    'proof.json': JSON.stringify({ leaf_index: pkg.leaf_index, tree_size: pkg.tree_size, hashes: pkg.proof }, null, 2) + '\n',
    'checkpoint.json': JSON.stringify(pkg.checkpoint, null, 2) + '\n',
    'public-key.pem': pkg.public_key,
    ...viewerFor(recording, pkg.catalog, seal, pkg),
  };
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body);
  if (pkg.format === 'asciicast') {
    await mkdir(join(dir, 'player'));
    for (const [name, src] of Object.entries(playerFiles())) await copyFile(src, join(dir, name));
  }
  return (await listFiles(dir)).sort();
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p, base)));
    else out.push(relative(base, p));
  }
  return out;
}

export interface BundleVerdict {
  ok: boolean;
  recording?: string;
  sha256?: string;
  checkpoint?: { size: number; time: string; key_id: string };
  problems: Problem[];
}

/**
 * Checks a bundle with nothing but its files and the public key(s) the auditor trusts: the
 * checkpoint's signature, the seal's inclusion under it, the recording and catalog entry
 * against the seal, and the viewer files against what this version of pam generates.
 */
export async function verifyBundle(dir: string, trusted: Keyring): Promise<BundleVerdict> {
  const problems: Problem[] = [];
  const read = async (name: string): Promise<Buffer | undefined> => {
    try {
      return await readFile(join(dir, name));
    } catch {
      problems.push({ what: 'missing', where: name });
      return undefined;
    }
  };
  let names: string[];
  try {
    names = await listFiles(dir);
  } catch (err) {
    return { ok: false, problems: [{ what: `cannot read the bundle: ${(err as Error).message}`, where: dir }] };
  }
  const format = names.includes('recording.cast') ? 'asciicast' : names.includes('recording.raw') ? 'raw' : names.includes('recording.jsonl') ? 'jsonl' : undefined;
  if (!format) return { ok: false, problems: [{ what: 'no recording.cast, recording.raw or recording.jsonl', where: dir }] };

  const [recording, catalog, sealBytes, proofBytes, cpBytes, pem] = await Promise.all(
    [dataName(format), 'catalog.json', 'seal.json', 'proof.json', 'checkpoint.json', 'public-key.pem'].map(read),
  );
  if (!recording || !catalog || !sealBytes || !proofBytes || !cpBytes || !pem) return { ok: false, problems };

  let cp: SignedCheckpoint | undefined;
  try {
    cp = parseCheckpoint(JSON.parse(cpBytes.toString('utf8')));
    const why = checkpointProblem(cp, trusted);
    if (why) problems.push({ what: `the checkpoint is not genuine: ${why}`, where: 'checkpoint.json' });
  } catch {
    problems.push({ what: 'not a signed checkpoint', where: 'checkpoint.json' });
  }
  try {
    const ring = parsePublicKeys(pem.toString('utf8'), 'public-key.pem');
    const [id, key] = [...ring][0]!;
    if (ring.size !== 1 || publicPemOf(key) !== pem.toString('utf8')) problems.push({ what: 'not exactly one canonical PEM public key', where: 'public-key.pem' });
    if (!trusted.has(id) || (cp && cp.key_id !== keyIdOf(key))) problems.push({ what: `key ${id} is not the trusted key that signed the checkpoint`, where: 'public-key.pem' });
  } catch (err) {
    problems.push({ what: (err as Error).message, where: 'public-key.pem' });
  }

  let proof: { leaf_index: number; tree_size: number; hashes: string[] } | undefined;
  try {
    proof = JSON.parse(proofBytes.toString('utf8'));
    const hashes = proof!.hashes.map((h) => {
      if (!/^[0-9a-f]{64}$/.test(h)) throw new Error('bad hash');
      return Buffer.from(h, 'hex');
    });
    if (cp && proof!.tree_size !== cp.size) problems.push({ what: `the proof is for ${proof!.tree_size} entries, the checkpoint for ${cp.size}`, where: 'proof.json' });
    else if (cp && !verifyInclusion(leafHash(sealBytes), proof!.leaf_index, proof!.tree_size, hashes, Buffer.from(cp.root, 'hex'))) {
      problems.push({ what: 'the seal is not in the signed log: the inclusion proof does not lead to the checkpoint root', where: 'seal.json, proof.json' });
    }
  } catch {
    problems.push({ what: 'not an inclusion proof', where: 'proof.json' });
  }

  let seal: Record<string, unknown> = {};
  try {
    seal = JSON.parse(sealBytes.toString('utf8'));
  } catch {
    problems.push({ what: 'not JSON', where: 'seal.json' });
  }
  if (seal.type !== 'recording.sealed') problems.push({ what: 'not a recording.sealed entry', where: 'seal.json' });
  const actual = sha256(recording);
  if (seal.sha256 !== actual) problems.push({ what: `the recording's bytes changed: sealed sha256 ${String(seal.sha256)}, file is ${actual}`, where: dataName(format) });
  if (seal.format !== format) problems.push({ what: `sealed as ${String(seal.format)}, bundled as ${format}`, where: 'seal.json' });
  if (seal.catalog_sha256 !== sha256(catalog)) problems.push({ what: 'the catalog entry is not the one sealed', where: 'catalog.json' });
  let meta: RecordingMeta | undefined;
  try {
    meta = JSON.parse(catalog.toString('utf8'));
    if (meta!.id !== seal.recording) problems.push({ what: `catalog entry of ${meta!.id}, seal of ${String(seal.recording)}`, where: 'catalog.json' });
  } catch {
    problems.push({ what: 'not JSON', where: 'catalog.json' });
  }

  // The viewer is only a view, but a changed byte there is still a changed byte.
  const expected: Record<string, Buffer> = {};
  if (meta && cp && proof) {
    for (const [n, body] of Object.entries(viewerFor(recording, catalog.toString('utf8'), seal, { leaf_index: proof.leaf_index, checkpoint: cp }))) expected[n] = Buffer.from(body);
  }
  if (format === 'asciicast') for (const [n, src] of Object.entries(playerFiles())) expected[n] = await readFile(src);
  for (const [n, body] of Object.entries(expected)) {
    const got = names.includes(n) ? await readFile(join(dir, n)) : undefined;
    if (!got) problems.push({ what: 'missing', where: n });
    else if (!got.equals(body)) problems.push({ what: 'differs from the viewer pam generates for this recording', where: n });
  }
  const known = new Set([dataName(format), 'catalog.json', 'seal.json', 'proof.json', 'checkpoint.json', 'public-key.pem', ...Object.keys(expected)]);
  for (const n of names) if (!known.has(n)) problems.push({ what: 'not part of an evidence bundle', where: n });

  return {
    ok: problems.length === 0, recording: typeof seal.recording === 'string' ? seal.recording : undefined, sha256: actual,
    checkpoint: cp ? { size: cp.size, time: cp.time, key_id: cp.key_id } : undefined, problems,
  };
}
