import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { loadConfig } from '../config/config.js';
import { verifyBundle, writeBundle, type BundleVerdict, type EvidencePackage } from '../recorder/evidence/bundle.js';
import { loadSigningKey, parsePublicKeys, readPublicKeys } from '../recorder/evidence/signing-key.js';
import { ApiClient, CliError } from './api-client.js';
import type { Flags } from './remote-commands.js';

const USAGE = 'pam evidence public-key | export RECORDING_ID --output DIR | verify DIR --public-key FILE';

const str = (f: Flags, k: string) => (typeof f[k] === 'string' ? (f[k] as string) : undefined);

function verdictText(v: BundleVerdict): string {
  if (v.ok) {
    return `bundle verified: recording ${v.recording} (sha256 ${v.sha256}) is sealed in a log of ${v.checkpoint!.size} entries, checkpoint signed ${v.checkpoint!.time} by key ${v.checkpoint!.key_id}\n`;
  }
  return `bundle does NOT verify (${v.problems.length} problem${v.problems.length === 1 ? '' : 's'}):\n${v.problems.map((p) => `  - ${p.where ? `${p.where}: ` : ''}${p.what}`).join('\n')}\n`;
}

async function exportBundle(id: string, out: string, f: Flags): Promise<void> {
  const api = new ApiClient({ server: str(f, 'server'), token: str(f, 'token') });
  const pkg = await api.call<EvidencePackage>('GET', `/api/v1/recordings/${encodeURIComponent(id)}/evidence`);
  const tmp = await mkdtemp(join(tmpdir(), 'pam-evidence-'));
  try {
    const res = await api.raw('GET', `/api/v1/recordings/${encodeURIComponent(id)}/evidence/data`);
    const data = join(tmp, 'recording');
    await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(data));
    const files = await writeBundle(out, pkg, data);
    // Self-check with the key the proxy sent: proves the folder is whole, not that the key is right.
    const v = await verifyBundle(out, parsePublicKeys(pkg.public_key));
    if (!v.ok) throw new CliError(`the bundle written to ${out} does not verify:\n${verdictText(v)}`);
    process.stdout.write(f.json === true ? JSON.stringify({ dir: out, files, key_id: pkg.checkpoint.key_id }) + '\n'
      : `wrote ${files.length} files to ${out} (checkpoint of ${pkg.tree_size} entries, key ${pkg.checkpoint.key_id}); check it with: pam evidence verify ${out} --public-key FILE, using a public key you got from the operator, not from the bundle\n`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

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
    case 'export': {
      const id = args[1];
      const out = str(f, 'output');
      if (!id || !out) throw new CliError('usage: pam evidence export RECORDING_ID --output DIR', 2);
      return exportBundle(id, out, f);
    }
    case 'verify': {
      // Offline: no config, no data_dir, no server. Only the folder and the key the auditor trusts.
      const dir = args[1];
      const keyFile = str(f, 'public-key');
      if (!dir || !keyFile) throw new CliError('usage: pam evidence verify DIR --public-key FILE', 2);
      const ring = await readPublicKeys([keyFile]).catch((err: Error) => {
        throw new CliError(err.message, 2);
      });
      const v = await verifyBundle(dir, ring);
      process.stdout.write(f.json === true ? JSON.stringify(v) + '\n' : verdictText(v));
      if (!v.ok) process.exitCode = 1;
      return;
    }
    default:
      throw new CliError(`usage: ${USAGE}`, 2);
  }
}
