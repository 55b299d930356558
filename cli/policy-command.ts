import { setFlagsFromString } from 'node:v8';
import { loadConfig } from '../config/config.js';
import { loadPolicyDir } from '../policies/policy-dir.js';
import { initSqlParser } from '../policies/sql-classify.js';
import { whatIf } from '../policies/what-if.js';
import { CliError } from './api-client.js';

/**
 * `pam policy test`: evaluates one command or statement against the rule files in the
 * configured policies_dir, with the evaluator the proxy uses. Exit 0 for allow/alert, 1 for
 * deny/review, so scripts and CI can assert on it.
 */
export async function policyCommand(configFile: string, args: string[], f: Record<string, string | boolean | undefined>): Promise<void> {
  const usage = 'pam policy test --user U --groups g1,g2 --target T --login L (--command "…" | --sql "…") [--json]';
  if (args[0] !== 'test') throw new CliError(`usage: ${usage}`, 2);
  const s = (k: string) => (typeof f[k] === 'string' ? (f[k] as string) : undefined);
  if (!s('user') || !s('target') || !s('login')) throw new CliError(`usage: ${usage}`, 2);
  // One statement to classify: compile libpg-query's WebAssembly functions on first call
  // instead of all up front (half the parser's start-up CPU; `pam serve` keeps eager
  // compilation). Started before the YAML is read, so the two overlap.
  setFlagsFromString('--wasm-lazy-compilation');
  const parser = initSqlParser();
  parser.catch(() => undefined);
  const config = loadConfig(configFile);
  await parser;
  let v;
  try {
    const { rules, roles } = loadPolicyDir(config.policiesDir);
    v = whatIf(rules, roles, config.targets, {
      user: s('user')!, groups: (s('groups') ?? '').split(',').map((g) => g.trim()).filter(Boolean),
      target: s('target')!, login: s('login')!, command: s('command'), sql: s('sql'),
    });
  } catch (e) {
    if ((e as Error).name === 'PolicyFileError') throw e;
    throw new CliError((e as Error).message, 2);
  }
  if (f.json === true) {
    process.stdout.write(JSON.stringify({ action: v.action, rule: v.rule ?? null, message: v.message ?? null, commands: v.commands, roles: v.request.roles }, null, 2) + '\n');
  } else {
    process.stdout.write(`${v.action.toUpperCase()}  ${v.rule ? `rule ${v.rule}` : `no rule matched: default_action of ${v.request.target}`}${v.message ? `\n  ${v.message}` : ''}\n`);
    if (v.commands?.length) process.stdout.write(`  seen as: ${v.commands.map((c) => c.join(' ')).join(' ; ')}\n`);
  }
  if (v.action === 'deny' || v.action === 'review') process.exitCode = 1;
}
