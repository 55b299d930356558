import type { HttpDeps } from './http.types.js';
import { HttpError } from './http-errors.js';
import { field, type Route } from './router.js';

/** `pam offboard`: POST /api/v1/offboard { user, reason } (approver or can_offboard; the service checks). */
export function lifecycleRoutes(cp: HttpDeps): Route[] {
  return [
    {
      method: 'POST', path: '/api/v1/offboard',
      handler: ({ identity, body }) => {
        if (!cp.offboarding) throw new HttpError(404, 'offboarding is not available on this listener');
        return cp.offboarding.offboard(identity, field(body, 'user', { required: true, max: 256 })!, field(body, 'reason', { required: true, max: 1000 })!);
      },
    },
  ];
}
