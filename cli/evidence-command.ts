import { loadConfig } from '../config/config.js';
import { loadSigningKey } from '../recorder/evidence/signing-key.js';
import { CliError } from './api-client.js';
import type { Flags } from './remote-commands.js';

const USAGE = 'pam evidence public-key | export RECORDING_ID --output DIR | verify DIR --public-key FILE';

/** `pam evidence …`: the public key (local, from the config), bundles out (API) and their offline check. */
export async function evidenceCommand(args: string[], f: Flags, configFile: () => string): Promise<void> {
  switch (args[0]) {
    case 'public-key': {
      const config = loadConfig(configFile());
      if (!config.evidence) throw new CliError(`${config.file} has no evidence section (evidence is unsigned)`, 2);
      // Never creates the key: printing a key nobody signs with would mislead.
      const key = await loadSigningKey(config.evidence.signingKeyFile, { create: false }).catch((err: Error) => {
        throw new CliError(err.message);
      });
      process.stdout.write(key.publicPem);
      return;
    }
    default:
      throw new CliError(`usage: ${USAGE}`, 2);
  }
}
