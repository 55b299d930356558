import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { LineCounter, parseDocument } from 'yaml';
import { join } from 'node:path';
import { loadRules, type RuleSet } from '../../policies/rules.js';
import { loadRoles, type Role } from '../../policies/roles.js';
import { HttpError } from './http-errors.js';

export const POLICY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.ya?ml$/;
export const MAX_POLICY_FILE = 512 * 1024;

/** A rule file's name as the API takes it, or 400. */
export function checkName(name: string): string {
  if (!POLICY_NAME.test(name) || name.includes('..')) throw new HttpError(400, 'a policy file name is letters, digits, . _ - ending in .yaml');
  return name;
}

/** The folder as it would be with one file replaced: loaded rules and roles, or the first error. */
export type DraftLoad = { ok: true; rules: RuleSet; roles: Role[] } | { ok: false; error: string };

/**
 * Loads `policies_dir` with `name` replaced by `content`, through the same loaders the engine
 * uses, from a private temp copy (the folder itself is never touched). Error messages name the
 * file and key, without the temp path.
 */
export async function loadDraft(dir: string, name: string, content: string): Promise<DraftLoad> {
  const tmp = await mkdtemp(join(tmpdir(), 'pam-policy-check-'));
  try {
    for (const f of await readdir(dir)) if (/\.ya?ml$/.test(f) && f !== name) await copyFile(join(dir, f), join(tmp, f));
    await writeFile(join(tmp, name), content);
    return { ok: true, rules: loadRules(tmp), roles: loadRoles(tmp) };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split(tmp + '/').join('') };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The 1-based line of `content` an error about file `name` points at, for the editor to mark:
 * a YAML syntax error names it; a key error names a path (`command_rules[1] (bad).match.regex`),
 * found in the parsed document (the deepest part of the path that exists).
 */
export function errorLine(name: string, content: string, message: string): number | undefined {
  if (!message.startsWith(`${name}: `)) return undefined;
  const at = /at line (\d+)/.exec(message);
  if (at) return Number(at[1]);
  const where = message.slice(name.length + 2).split(': ')[0]!.replace(/ \([^)]*\)/g, '');
  const path = where.split(/\.|(?=\[)/).filter(Boolean).map((p) => (/^\[\d+\]$/.test(p) ? Number(p.slice(1, -1)) : p));
  const lines = new LineCounter();
  const doc = parseDocument(content, { lineCounter: lines });
  for (let n = path.length; n > 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}
