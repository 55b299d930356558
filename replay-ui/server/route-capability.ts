import type { Identity } from '../../access/identity.types.js';
import { capabilitiesOf, refusalFor, type Capability } from '../../access/capabilities.js';
import type { HttpDeps } from './http.types.js';
import { HttpError } from './http-errors.js';

/** Throws 403 unless the identity holds `need`; access/capabilities.ts decides and words it. */
export function requireCapability(cp: HttpDeps, identity: Identity, need: Capability): void {
  const refusal = refusalFor(capabilitiesOf(identity, cp.roles()), need);
  if (refusal) throw new HttpError(403, refusal);
}

export const requireAudit = (cp: HttpDeps, identity: Identity): void => requireCapability(cp, identity, 'audit');
