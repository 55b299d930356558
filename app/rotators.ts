import type { CredentialRotator } from '../access/rotation.types.js';
import type { Target } from '../config/config.types.js';
import { postgresRotator } from '../proxy/postgres/rotator.js';
import { sshRotator } from '../proxy/ssh/rotator.js';

/** The protocol rotators (proxy/postgres/rotator.ts, proxy/ssh/rotator.ts), for the control plane and `pam secret rotate`. */
export function rotators(): Partial<Record<Target['protocol'], CredentialRotator>> {
  return { postgres: postgresRotator(), ssh: sshRotator() };
}
