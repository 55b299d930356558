import type { HttpDeps } from './http.types.js';
import { HttpError } from './http-errors.js';
import { field, type Route } from './router.js';
import { requireCapability } from './route-capability.js';
import { DiscoveryError } from '../../access/discovery.js';

/**
 * `pam offboard`: POST /api/v1/offboard { user, reason } (approver or can_offboard; the service
 * checks). `pam discover`: GET /api/v1/targets/:name/discover (can_audit or can_offboard).
 */
export function lifecycleRoutes(cp: HttpDeps): Route[] {
  return [
    {
      method: 'POST', path: '/api/v1/offboard',
      handler: ({ identity, body }) => {
        if (!cp.offboarding) throw new HttpError(404, 'offboarding is not available on this listener');
        return cp.offboarding.offboard(identity, field(body, 'user', { required: true, max: 256 })!, field(body, 'reason', { required: true, max: 1000 })!);
      },
    },
    {
      // The security capability: auditors and can_offboard roles see what exists beyond the vault.
      method: 'GET', path: '/api/v1/targets/:name/discover',
      handler: async ({ identity, params }) => {
        if (!cp.discovery) throw new HttpError(404, 'discovery is not available on this listener');
        requireCapability(cp, identity, 'discover');
        try {
          return await cp.discovery.discover(params.name!, identity.user);
        } catch (err) {
          if (err instanceof DiscoveryError) throw new HttpError(err.status, err.message);
          throw err;
        }
      },
    },
  ];
}
