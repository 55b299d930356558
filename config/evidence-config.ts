import { hostname } from 'node:os';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDuration } from './duration.js';
import type { EvidenceConfig, RecordingMode } from './config.types.js';

/** Thrown with the dotted key; config.ts turns it into its ConfigError. */
export class EvidenceConfigError extends Error {
  constructor(readonly key: string, why: string) {
    super(why);
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function known(obj: Obj, path: string, keys: string[]): void {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) throw new EvidenceConfigError(`${path}.${k}`, `unknown key (expected one of: ${keys.join(', ')})`);
}

function text(obj: Obj, key: string, path: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim() === '') throw new EvidenceConfigError(`${path}.${key}`, 'must be a non-empty string');
  return v;
}

/** `targets[].recording: { mode: strict | best-effort }`; absent = strict. */
export function parseRecordingMode(target: Obj, path: string): RecordingMode | undefined {
  if (target.recording === undefined || target.recording === null) return undefined;
  const p = `${path}.recording`;
  if (!isObj(target.recording)) throw new EvidenceConfigError(p, 'must be { mode: strict | best-effort, transfers: hash | content }');
  known(target.recording, p, ['mode', 'transfers']);
  const mode = text(target.recording, 'mode', p) ?? 'strict';
  if (mode !== 'strict' && mode !== 'best-effort') throw new EvidenceConfigError(`${p}.mode`, 'must be strict or best-effort');
  return mode;
}

/** `recording: { transfers }` of an SSH target: `content` keeps transferred files' contents, `hash` (default) their SHA-256 only. */
export function parseRecordingTransfers(target: Obj, path: string): 'hash' | 'content' | undefined {
  if (!isObj(target.recording)) return undefined;
  const v = text(target.recording, 'transfers', `${path}.recording`);
  if (v === undefined) return undefined;
  if (v !== 'hash' && v !== 'content') throw new EvidenceConfigError(`${path}.recording.transfers`, 'must be hash or content');
  return v;
}

const inside = (dir: string, p: string) => {
  const r = relative(dir, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/** `evidence:` (absent = unsigned evidence). Key and witness must live outside data_dir. */
export function parseEvidence(v: unknown, rel: (p: string) => string, dataDir: string): EvidenceConfig | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw new EvidenceConfigError('evidence', 'must be a mapping: { signing_key_file, witness }');
  known(v, 'evidence', ['signing_key_file', 'witness', 'previous_public_keys', 'checkpoint_interval', 'origin']);
  const keyFile = text(v, 'signing_key_file', 'evidence');
  if (!keyFile) throw new EvidenceConfigError('evidence.signing_key_file', 'is required');
  const signingKeyFile = rel(keyFile);
  // Whoever can write data_dir must not be able to reach the key or the witness.
  if (inside(dataDir, signingKeyFile)) throw new EvidenceConfigError('evidence.signing_key_file', `must be outside data_dir (${dataDir})`);
  const witness = text(v, 'witness', 'evidence');
  if (witness !== undefined) {
    if (!/^file:\/\/\//.test(witness)) throw new EvidenceConfigError('evidence.witness', 'must be a file:///absolute/path URL');
    if (inside(dataDir, fileURLToPath(witness))) throw new EvidenceConfigError('evidence.witness', `must be outside data_dir (${dataDir})`);
  }
  const prev = v.previous_public_keys ?? [];
  if (!Array.isArray(prev) || prev.some((e) => typeof e !== 'string' || e.trim() === '')) throw new EvidenceConfigError('evidence.previous_public_keys', 'must be a list of PEM file paths');
  let checkpointIntervalMs = 5000;
  const ci = text(v, 'checkpoint_interval', 'evidence');
  if (ci) {
    try {
      checkpointIntervalMs = parseDuration(ci);
    } catch (e) {
      throw new EvidenceConfigError('evidence.checkpoint_interval', (e as Error).message);
    }
  }
  const origin = text(v, 'origin', 'evidence') ?? hostname();
  if (/[\n\r]/.test(origin)) throw new EvidenceConfigError('evidence.origin', 'must be one line');
  return { signingKeyFile, witness, previousPublicKeys: (prev as string[]).map(rel), checkpointIntervalMs, origin };
}
