import { accessSync, constants } from 'node:fs';
import { loadConfig } from '../config/config.js';
import { configSchema } from '../config/config-schema.js';
import type { Config } from '../config/config.types.js';
import { loadPolicyDir } from '../policies/policy-dir.js';
import { CliError } from './api-client.js';

/** Files the config names that must exist and be readable before `pam serve` starts. */
function filesOf(c: Config): [string, string][] {
  const out: [string, string | undefined][] = [
    ['postgres.tls_cert', c.postgres.tlsCert], ['postgres.tls_key', c.postgres.tlsKey],
    ['http.tls_cert', c.http?.tls?.cert], ['http.tls_key', c.http?.tls?.key],
    ['scim.token_file', c.scim?.tokenFile],
    ...c.targets.map((t, i): [string, string | undefined] => [`targets[${i}].ca_file`, t.protocol === 'postgres' ? t.caFile : undefined]),
    ...(c.auditExport ?? []).flatMap((s, i): [string, string | undefined][] => [[`audit_export[${i}].ca_file`, s.caFile], [`audit_export[${i}].secret_file`, s.secretFile]]),
    ...(c.notify ?? []).map((n, i): [string, string | undefined] => [`notify[${i}].secret_file`, n.secretFile]),
  ];
  return out.filter((f): f is [string, string] => f[1] !== undefined);
}

/**
 * `pam config check FILE`: validates a config as `pam serve` would load it, with the role and
 * rule files of its policies_dir and the files it names, and starts nothing (no listener, no
 * store, no data_dir writes). Exit 0 when fine, 2 with every problem found.
 * `pam config schema`: the JSON Schema of the file, for editors.
 */
export async function configCommand(args: string[], file: string | undefined, json: boolean): Promise<void> {
  const usage = 'usage: pam config check FILE | pam config schema';
  if (args[0] === 'schema') {
    process.stdout.write(JSON.stringify(configSchema(), null, 2) + '\n');
    return;
  }
  if (args[0] !== 'check') throw new CliError(usage, 2);
  const path = args[1] ?? file;
  if (!path) throw new CliError(usage, 2);
  const config = loadConfig(path);
  const problems: string[] = [];
  let roles = 0;
  let rules = 0;
  try {
    const p = loadPolicyDir(config.policiesDir);
    roles = p.roles.length;
    rules = p.rules.rules.length;
  } catch (err) {
    problems.push(`policies_dir: ${(err as Error).message}`);
  }
  for (const [key, f] of filesOf(config)) {
    try {
      accessSync(f, constants.R_OK);
    } catch (err) {
      problems.push(`config: ${key}: cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const listeners = Object.entries(config.listen).map(([k, l]) => `${k} ${l!.host}:${l!.port}`);
  if (json) {
    process.stdout.write(JSON.stringify({ file: config.file, ok: problems.length === 0, problems, targets: config.targets.map((t) => t.name), listeners, roles, rules }, null, 2) + '\n');
  } else if (problems.length === 0) {
    process.stdout.write(`${config.file}: ok (${config.targets.length} targets, ${roles} roles, ${rules} rules, ${listeners.join(', ')})\n`);
  }
  if (problems.length) {
    if (!json) process.stderr.write(problems.map((p) => `pam: ${p}\n`).join(''));
    process.exitCode = 2;
  }
}
