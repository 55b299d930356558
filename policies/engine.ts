/**
 * The PolicyEngine the brokers hold: the current rule set from policies_dir, swapped in place
 * when files change (fs.watch plus a poll, so a missed event costs at most `pollMs`).
 * A file that fails validation is refused: its last good version stays in force and `onError`
 * is called once per bad version (the proxy audits it).
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import type { Action, PolicyRequest, Verdict } from './policy.types.js';
import type { PolicyEngine } from './engine.types.js';
import { engineCache, POLICY_ERROR_RULE } from './engine-cache.js';
import type { Role } from './roles.js';
import { combineRuleFiles, parseRuleFile, policyFiles, PolicyFileError, type RuleFile, type RuleSet } from './rules.js';
import { evaluate } from './evaluator.js';
import { initSqlParser } from './sql-classify.js';
import YAML from 'yaml';

export interface PolicyEngineOptions {
  /** policies_dir: every *.yaml / *.yml in it is read (roles.ts reads the `roles` key of the same files). */
  dir: string;
  /**
   * Target name → default action when no rule matches (config `targets[].default_action`).
   * A target missing here is treated as `deny`: the brokers only serve configured targets.
   */
  targets: Record<string, Action> | ((target: string) => Action | undefined);
  /** The roles in force (read from the same files by the control plane), for `subjectOf`. Default: none. */
  roles?: () => Role[];
  /** A file was refused on reload (or evaluation failed and was denied). */
  onError?(err: Error): void;
  /** A new rule set is in force. */
  onReload?(rules: RuleSet): void;
  /** Poll interval, default 1000 ms. */
  pollMs?: number;
  /** Quiet time after a change event before reading, so half-written files are not read. Default 150 ms. */
  settleMs?: number;
}

export interface RunningPolicyEngine extends PolicyEngine {
  /** Re-reads the folder now; returns the errors of refused files (also sent to onError). */
  reload(): Error[];
  close(): void;
}

interface FileState { text: string; good?: RuleFile }

/**
 * Loads the folder and starts watching it. Throws PolicyFileError if a file is invalid at
 * start: the proxy should not start with a policy it cannot read.
 */
export async function createPolicyEngine(opts: PolicyEngineOptions): Promise<RunningPolicyEngine> {
  await initSqlParser();
  const files = new Map<string, FileState>();
  let current: RuleSet;
  let closed = false;

  const defaultFor = (target: string): Action =>
    (typeof opts.targets === 'function' ? opts.targets(target) : Object.hasOwn(opts.targets, target) ? opts.targets[target] : undefined) ?? 'deny';

  const report = (e: Error) => {
    try {
      opts.onError?.(e);
    } catch {
      // a failing hook must not break reloading
    }
  };

  function parseText(file: string, text: string): RuleFile {
    let doc: unknown;
    try {
      doc = YAML.parse(text);
    } catch (e) {
      throw new PolicyFileError(file, '(yaml)', (e as Error).message.split('\n')[0]!);
    }
    return parseRuleFile(doc, file);
  }

  /** Returns the errors; `strict` (start-up) throws the first one instead. */
  function scan(strict: boolean): Error[] {
    const errors: Error[] = [];
    let names: string[];
    try {
      names = policyFiles(opts.dir);
    } catch (e) {
      if (strict) throw e;
      return [e as Error]; // folder briefly gone (e.g. replaced by a deploy): keep what we have
    }
    let changed = false;
    for (const file of [...files.keys()]) {
      if (!names.includes(file)) {
        files.delete(file);
        changed = true;
      }
    }
    for (const file of names) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        if (strict) throw e;
        continue; // vanished between readdir and read; the next scan sees it
      }
      const prev = files.get(file);
      if (prev && prev.text === text) continue;
      try {
        files.set(file, { text, good: parseText(file, text) });
        changed = true;
      } catch (e) {
        if (strict) throw e;
        files.set(file, { text, good: prev?.good });
        errors.push(e as Error);
      }
    }
    if (!changed && !strict) return errors;
    try {
      const good = [...files.values()].map((f) => f.good).filter((g): g is RuleFile => g !== undefined);
      current = combineRuleFiles(good);
      if (!strict) opts.onReload?.(current);
    } catch (e) {
      if (strict) throw e;
      errors.push(e as Error);
    }
    return errors;
  }

  function reload(): Error[] {
    if (closed) return [];
    const errors = scan(false);
    errors.forEach(report);
    return errors;
  }

  scan(true);

  let settle: NodeJS.Timeout | undefined;
  const soon = () => {
    if (settle) clearTimeout(settle);
    settle = setTimeout(reload, opts.settleMs ?? 150);
    settle.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(opts.dir, { persistent: false }, soon);
    watcher.on('error', () => {
      watcher?.close();
      watcher = undefined; // the poll keeps going
    });
  } catch {
    watcher = undefined;
  }
  const poll = setInterval(reload, opts.pollMs ?? 1000);
  poll.unref();

  const evaluateNow = (request: PolicyRequest): Verdict => {
    try {
      return evaluate(current, request, defaultFor(request.target));
    } catch (e) {
      report(new Error(`policy evaluation failed: ${(e as Error).message}`, { cause: e }));
      return { action: 'deny', rule: POLICY_ERROR_RULE, message: 'The policy could not be evaluated; denied.' };
    }
  };
  const noRoles: Role[] = [];
  return {
    evaluate: evaluateNow,
    rules: () => current,
    ...engineCache({ evaluate: evaluateNow, rules: () => current, roles: opts.roles ?? (() => noRoles), defaultFor }),
    reload,
    close() {
      closed = true;
      clearInterval(poll);
      if (settle) clearTimeout(settle);
      watcher?.close();
    },
  };
}
