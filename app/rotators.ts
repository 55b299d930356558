import type { CredentialRotator } from '../access/rotation.types.js';
import type { Target } from '../config/config.types.js';
import { postgresRotator } from '../proxy/postgres/rotator.js';
import { sshRotator } from '../proxy/ssh/rotator.js';
import type { DiscoveryProbe } from '../access/discovery.js';
import { postgresDiscovery } from '../proxy/postgres/discover.js';
import { sshDiscovery } from '../proxy/ssh/discover.js';

/** The protocol rotators (proxy/postgres/rotator.ts, proxy/ssh/rotator.ts), for the control plane and `pam secret rotate`. */
export function rotators(): Partial<Record<Target['protocol'], CredentialRotator>> {
  return { postgres: postgresRotator(), ssh: sshRotator() };
}

/** The protocol discovery probes (proxy/postgres/discover.ts, proxy/ssh/discover.ts). */
export function probes(): Partial<Record<Target['protocol'], DiscoveryProbe>> {
  return { postgres: postgresDiscovery(), ssh: sshDiscovery() };
}
