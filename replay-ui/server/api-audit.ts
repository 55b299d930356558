import type { HttpDeps } from './http.types.js';
import { parseDuration } from '../../config/duration.js';
import { verifyAuditEvidence } from '../../recorder/evidence/evidence-verify.js';
import { HttpError } from './http-errors.js';
import { requireAudit } from './route-capability.js';
import type { Route } from './router.js';

/** The audit log: GET /api/v1/audit?since=1h, GET /api/v1/audit/verify. */
export function auditRoutes(cp: HttpDeps): Route[] {
  return [
    {
      method: 'GET', path: '/api/v1/audit',
      handler: async ({ identity, url }) => {
        requireAudit(cp, identity);
        const since = url.searchParams.get('since');
        let sinceMs: number | undefined;
        if (since) {
          try {
            sinceMs = Date.now() - parseDuration(since);
          } catch (e) {
            throw new HttpError(400, `"since": ${(e as Error).message}`);
          }
        }
        return cp.audit.read({ sinceMs });
      },
    },
    {
      method: 'GET', path: '/api/v1/audit/verify',
      handler: async ({ identity }) => {
        requireAudit(cp, identity);
        // Sign what is there first, so the newest entries are covered too.
        await cp.evidence?.checkpoint();
        const v = await verifyAuditEvidence(cp.evidenceSources);
        const first = v.problems[0];
        return { ...v, ...(first ? { why: first.what, where: first.where } : {}) };
      },
    },
  ];
}
