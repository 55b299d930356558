/**
 * What an insider with write access to data_dir can do to the audit log: edit, drop, insert or
 * reorder lines and then recompute the whole SHA-256 chain, so the old chain check passes.
 */
import { createHash } from 'node:crypto';

export function rechain(lines: string[]): string[] {
  let prev = '0'.repeat(64);
  return lines.map((line, i) => {
    const { hash: _h, ...body } = JSON.parse(line) as Record<string, unknown>;
    const next = { ...body, seq: i + 1, prev };
    const hash = createHash('sha256').update(prev).update('\n').update(JSON.stringify(next)).digest('hex');
    prev = hash;
    return JSON.stringify({ ...next, hash });
  });
}

export type Tamper = 'edit' | 'remove' | 'reorder' | 'truncate';

/** Applies one tamper at line index `at` (0-based) and re-chains, as a careful forger would. */
export function forge(lines: string[], how: Tamper, at: number, edit: (e: Record<string, unknown>) => void = (e) => (e.actor = 'nobody')): string[] {
  const out = [...lines];
  if (how === 'edit') {
    const e = JSON.parse(out[at]!) as Record<string, unknown>;
    edit(e);
    out[at] = JSON.stringify(e);
  }
  if (how === 'remove') out.splice(at, 1);
  if (how === 'reorder') [out[at], out[at + 1]] = [out[at + 1]!, out[at]!];
  if (how === 'truncate') out.length = at;
  return rechain(out);
}
