import { parseArgs } from 'node:util';
import { CliError } from './api-client.js';
import type { RotationDeps } from '../access/rotation.js';
import { configPath } from './config-path.js';

// Every verb loads its modules when it runs: `pam --help` and `pam policy test` start without
// the store, the vault, the HTTP client or jose (bench/cli-startup.ts measures it).
const remoteCommand: typeof import('./remote-commands.js').remoteCommand = async (...a) => (await import('./remote-commands.js')).remoteCommand(...a);

const HELP = `pam — privileged-access proxy

  pam serve --config FILE                      run the proxy (or PAM_CONFIG)
  pam secret set NAME < value | list | rm NAME secrets in the vault (local store); list shows last rotated, next due, last error
  pam secret rotate NAME                       new credential at the target (Postgres password, SSH key) and in the vault
  pam dev token USER --groups g1,g2            token from the dev issuer (identity: { dev: true })
  pam config check FILE                        validate a config (and its policies and files) without starting anything
  pam config schema                            the config's JSON Schema, for editors
  pam policy test --user U --groups g1,g2 --target T --login L (--command "…" | --sql "…")
                                               what-if: the verdict and the rule that decided

  pam index rebuild                            rebuild the search index from the recordings in data_dir (proxy running or not)
  pam evidence public-key                      the evidence signing key's public half (PEM), from the config
  pam evidence verify DIR --public-key FILE    check an evidence bundle offline (no config, no data_dir)

Through the proxy's API (PAM_SERVER or --server; the token from --token-file FILE, PAM_TOKEN
or the cache \`pam login\` writes; --token TOKEN works but warns: arguments are visible to all):
  pam login < TOKEN_FILE · pam logout              cache the token (0600) / forget it
  pam request --target T --login L --duration 30m --reason "…"
  pam approve ID [--reason …] [--duration 30m] · pam deny ID --reason … · pam requests
  pam grants · pam revoke ID
  pam audit [--since 1h] · pam audit verify [--local: this host's data_dir from the config, no proxy needed]
  pam recordings list · pam recordings export ID --format asciicast|text|jsonl|raw [--stream stdout|stderr|stdin] · pam recordings verify ID [--local]
  pam evidence export RECORDING_ID --output DIR   an evidence bundle for auditors (recording, proof, checkpoint, key, viewer)
  pam search [QUERY] [--user U] [--target T] [--protocol ssh|postgres] [--since 7d] [--kind output|command|sql] [--verdict deny]
                                               output, commands and SQL of every session (no QUERY: command events)
  pam sessions · pam kill SESSION_ID --reason …
  pam held · pam approve-command ID · pam deny-command ID --reason …   commands held by review rules
  pam login --key ~/.ssh/id_ed25519.pub        bind an SSH key to your token's identity
  pam whoami
  pam discover TARGET                          privileged accounts on a target and whether the proxy manages them
  pam offboard USER --reason "…"              remove every access of a person in one step (approver or can_offboard)
Every listing takes --json.
`;

/** What the composition root hands the CLI: the verbs that start the proxy itself. */
export interface CliHost {
  serve(configFile: string): Promise<void>;
  /** The protocol rotators for `pam secret rotate` (they live in proxy/, which cli/ must not import). */
  rotators?(): Promise<RotationDeps['rotators']>;
}

async function main(argv: string[], host: CliHost): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' }, server: { type: 'string' }, token: { type: 'string' }, 'token-file': { type: 'string' }, json: { type: 'boolean' },
      target: { type: 'string' }, login: { type: 'string' }, duration: { type: 'string' }, reason: { type: 'string' },
      since: { type: 'string' }, format: { type: 'string' }, output: { type: 'string' }, groups: { type: 'string' },
      ttl: { type: 'string' }, key: { type: 'string' }, user: { type: 'string' }, command: { type: 'string' }, sql: { type: 'string' },
      'public-key': { type: 'string' }, local: { type: 'boolean' }, stream: { type: 'string' }, channel: { type: 'string' },
      kind: { type: 'string' }, verdict: { type: 'string' }, protocol: { type: 'string' }, until: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' },
      help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' },
    },
  });
  const [cmd, ...args] = positionals;
  if (values.version === true) {
    // Which code runs: the build in dist/ or the TypeScript sources (bin/pam.js decides).
    process.stdout.write(`pam-proxy (${process.env.PAM_ENTRY ?? 'sources'})\n`);
    return;
  }
  if (!cmd || cmd === 'help' || values.help) {
    process.stdout.write(HELP);
    return;
  }
  switch (cmd) {
    case 'serve': {
      return host.serve(configPath(values.config));
    }
    case 'secret': {
      const { loadConfig } = await import('../config/config.js');
      const { secretCommand } = await import('./local-commands.js');
      return secretCommand(loadConfig(configPath(values.config)), args[0], args[1], values.json === true, await host.rotators?.());
    }
    case 'config': {
      const { configCommand } = await import('./config-command.js');
      return configCommand(args, values.config, values.json === true);
    }
    case 'policy': {
      const { policyCommand } = await import('./policy-command.js');
      return policyCommand(configPath(values.config), args, values);
    }
    case 'evidence': {
      const { evidenceCommand } = await import('./evidence-command.js');
      return evidenceCommand(args, values, () => configPath(values.config));
    }
    case 'audit':
    case 'recordings':
      if (values.local === true && args[0] === 'verify') {
        const { localAuditVerify, localRecordingVerify } = await import('./local-verify.js');
        if (cmd === 'audit') return localAuditVerify(configPath(values.config), values.json === true);
        if (!args[1]) throw new CliError('usage: pam recordings verify ID [--local]', 2);
        return localRecordingVerify(configPath(values.config), args[1], values.json === true);
      }
      return remoteCommand(cmd, args, values);
    case 'index': {
      const { indexCommand } = await import('./index-command.js');
      return indexCommand(configPath(values.config), args, values.json === true);
    }
    case 'dev':
      if (args[0] !== 'token') throw new CliError('usage: pam dev token USER --groups g1,g2', 2);
      return (await import('./local-commands.js')).devTokenCommand(configPath(values.config), args[1], values.groups, values.ttl);
    default:
      return remoteCommand(cmd, args, values);
  }
}

/** Runs one `pam` command line; exits the process with its status on error. */
export function runCli(argv: string[], host: CliHost): Promise<void> {
  return main(argv, host).catch((err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`pam: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    const e = err as Error & { code?: string };
    if (e?.name === 'ConfigError' || e?.name === 'PolicyFileError' || e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`pam: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`pam: ${e?.message ?? String(err)}\n`);
    process.exit(1);
  });
}
