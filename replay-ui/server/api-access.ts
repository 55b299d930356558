import type { ServerResponse } from 'node:http';
import type { HttpDeps } from './http.types.js';
import { parseDuration } from '../../config/duration.js';
import { HttpError } from './http-errors.js';
import { field, type Route } from './router.js';
import { KeyBindingError } from '../../access/ssh-keys.js';

/** Access requests, approvals and grants: /api/v1/requests, /api/v1/grants. */
export function accessRoutes(cp: HttpDeps): Route[] {
  return [
    {
      method: 'POST', path: '/api/v1/requests', status: 201,
      handler: async ({ identity, body }) => {
        const duration = field(body, 'duration', { required: true, max: 32 })!;
        let durationMs: number;
        try {
          durationMs = parseDuration(duration);
        } catch (e) {
          throw new HttpError(400, `"duration": ${(e as Error).message}`);
        }
        return cp.access.request(identity, {
          target: field(body, 'target', { required: true, max: 128 })!,
          login: field(body, 'login', { required: true, max: 128 })!,
          durationMs,
          reason: field(body, 'reason', { required: true, max: 1000 })!,
        });
      },
    },
    { method: 'GET', path: '/api/v1/requests', handler: ({ identity }) => cp.access.listRequests(identity) },
    {
      method: 'GET', path: '/api/v1/requests/:id',
      handler: async ({ identity, params }) => {
        const found = (await cp.access.listRequests(identity)).find((r) => r.id === params.id);
        if (!found) throw new HttpError(404, 'no such request');
        return found;
      },
    },
    {
      // `duration` (optional): approve less time than asked, e.g. "30m" for a 2h request.
      method: 'POST', path: '/api/v1/requests/:id/approve',
      handler: ({ identity, params, body }) => {
        const duration = field(body, 'duration', { max: 32 });
        let durationMs: number | undefined;
        if (duration !== undefined) {
          try {
            durationMs = parseDuration(duration);
          } catch (e) {
            throw new HttpError(400, `"duration": ${(e as Error).message}`);
          }
        }
        return cp.access.approve(identity, params.id!, field(body, 'reason', { max: 1000 }), durationMs);
      },
    },
    { method: 'POST', path: '/api/v1/requests/:id/deny', handler: ({ identity, params, body }) => cp.access.deny(identity, params.id!, field(body, 'reason', { required: true, max: 1000 })!) },
    { method: 'GET', path: '/api/v1/grants', handler: ({ identity }) => cp.access.listGrants(identity) },
    { method: 'POST', path: '/api/v1/grants/:id/revoke', handler: ({ identity, params, body }) => cp.access.revoke(identity, params.id!, field(body, 'reason', { max: 1000 })) },
    {
      // Step 1 of `pam login --key`: a single-use challenge tied to the caller and the key.
      method: 'POST', path: '/api/v1/ssh-keys/challenge', status: 201,
      handler: async ({ req, res, identity, body }) => {
        const source = (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
        return keyErrors(() => cp.sshKeys.challenge(identity, field(body, 'public_key', { required: true, max: 16384 })!, source), res);
      },
    },
    {
      // Step 2: the key's signature over the challenge (access/key-proof.ts), then the binding.
      method: 'POST', path: '/api/v1/ssh-keys', status: 201,
      handler: async ({ identity, body }) => {
        const publicKey = field(body, 'public_key', { required: true, max: 16384 })!;
        const challenge = field(body, 'challenge', { max: 256 });
        const signature = field(body, 'signature', { max: 8192 });
        if (!challenge || !signature) throw new HttpError(400, 'send "challenge" (from POST /api/v1/ssh-keys/challenge) and "signature" (base64 SSH signature over it); `pam login --key` does both');
        const b = await keyErrors(() => cp.sshKeys.bind(identity, publicKey, { challenge, signature: Buffer.from(signature, 'base64') }));
        return { fingerprint: b.fingerprint, type: b.type, expiresAt: b.expiresAt };
      },
    },
    { method: 'GET', path: '/api/v1/holds', handler: ({ identity }) => cp.holds.list(identity) },
    { method: 'POST', path: '/api/v1/holds/:id/approve', handler: ({ identity, params, body }) => cp.holds.decide(identity, params.id!, true, field(body, 'reason', { max: 1000 })) },
    { method: 'POST', path: '/api/v1/holds/:id/deny', handler: ({ identity, params, body }) => cp.holds.decide(identity, params.id!, false, field(body, 'reason', { max: 1000 })) },
    { method: 'GET', path: '/api/v1/targets', handler: () => cp.config.targets.map((t) => ({ name: t.name, protocol: t.protocol, logins: Object.keys(t.logins) })) },
  ];
}

/** Key-binding refusals as API errors: a key bound to someone else is a conflict (409). */
async function keyErrors<T>(fn: () => Promise<T>, res?: ServerResponse): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof KeyBindingError)) throw e;
    if (e.code === 'busy') {
      res?.setHeader('retry-after', String(Math.ceil((e.retryAfterMs ?? 1000) / 1000)));
      throw new HttpError(429, e.message);
    }
    throw new HttpError(e.code === 'taken' ? 409 : 400, e.message);
  }
}
