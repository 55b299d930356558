import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from '../../access/identity.types.js';
import type { KeyBinding, SshKeyBindings } from '../../access/ssh-keys.js';
import { signChallenge } from '../../cli/key-signer.js';

/** `pam login --key` without HTTP: challenge, sign with the private key as the CLI does, bind. */
export async function bindKeyWithProof(keys: SshKeyBindings, identity: Identity, pair: { public: string; private: string }): Promise<KeyBinding> {
  const dir = await mkdtemp(join(tmpdir(), 'pam-key-'));
  try {
    await writeFile(join(dir, 'id'), pair.private, { mode: 0o600 });
    await writeFile(join(dir, 'id.pub'), pair.public);
    const { challenge } = await keys.challenge(identity, pair.public);
    const signature = await signChallenge(join(dir, 'id.pub'), pair.public, challenge, {});
    return await keys.bind(identity, pair.public, { challenge, signature });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
