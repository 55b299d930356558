import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../../access/identity.types.js';
import { HttpError } from './http-errors.js';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  /** Set by the auth step for every route that is not `public`. */
  identity: Identity;
  /** Parsed JSON body (POST/PUT/PATCH), {} when empty. */
  body: Record<string, unknown>;
}

/** A handler returns a value to send as JSON (status 200, or `status`), or handles `res` itself and returns undefined. */
export type Handler = (ctx: RequestContext) => Promise<unknown> | unknown;

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path with `:name` segments, e.g. /api/v1/requests/:id/approve */
  path: string;
  handler: Handler;
  /** No bearer token needed (sign-in, static files, health). */
  public?: boolean;
  /** The handler reads the request body itself (SCIM: its own media type and error format). */
  rawBody?: boolean;
  /** 201 for creations. */
  status?: number;
}

interface Compiled extends Route { re: RegExp; names: string[] }

export class Router {
  private readonly routes: Compiled[] = [];

  add(...routes: Route[]): this {
    for (const r of routes) {
      const names: string[] = [];
      const re = new RegExp('^' + r.path.replace(/:[a-zA-Z]+/g, (m) => { names.push(m.slice(1)); return '([^/]+)'; }) + '/?$');
      this.routes.push({ ...r, re, names });
    }
    return this;
  }

  match(method: string, pathname: string): { route: Route; params: Record<string, string> } {
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.re.exec(pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      const params: Record<string, string> = {};
      r.names.forEach((n, i) => {
        try {
          params[n] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new HttpError(400, 'malformed path');
        }
      });
      return { route: r, params };
    }
    throw pathMatched ? new HttpError(405, `${method} is not allowed here`) : new HttpError(404, 'no such endpoint');
  }
}

/** Reads a string field; throws 400 naming the field. */
export function field(body: Record<string, unknown>, name: string, opts: { required?: boolean; max?: number } = {}): string | undefined {
  const v = body[name];
  if (v === undefined || v === null || v === '') {
    if (opts.required) throw new HttpError(400, `"${name}" is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new HttpError(400, `"${name}" must be a string`);
  if (v.length > (opts.max ?? 4096)) throw new HttpError(400, `"${name}" is too long`);
  return v;
}
