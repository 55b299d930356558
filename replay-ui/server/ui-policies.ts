import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Identity } from '../../access/identity.types.js';
import type { HttpDeps } from './http.types.js';
import { loadRoles, type Role } from '../../policies/roles.js';
import { checkRoleChange } from '../../access/role-change.js';
import { HttpError } from './http-errors.js';
import { requireCapability } from './route-capability.js';
import { field, type Route } from './router.js';
import { auditBy } from '../../recorder/audit-events.js';
import { checkName, errorLine, loadDraft, MAX_POLICY_FILE as MAX_FILE, POLICY_NAME as NAME } from './policy-draft.js';

const VERSION = /^[0-9]{13}-[0-9a-f]{8}$/;

interface VersionMeta { version: string; file: string; author: string; time: string; sha256: string; message: string; size: number }

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const requireEdit = (cp: HttpDeps, identity: Identity) => requireCapability(cp, identity, 'editPolicies');
const requireRead = (cp: HttpDeps, identity: Identity) => requireCapability(cp, identity, 'readPolicies');

/**
 * Rule files in policies_dir: list, read, validate, publish, history. Validation loads the
 * whole folder (with the edited file in place) into a temp copy through the same loaders the
 * engine uses. Publishing writes atomically into policies_dir (the engine hot-reloads it) and
 * keeps every version in data_dir/policy-history/FILE/VERSION.yaml with author and time.
 */
export function uiPolicyRoutes(cp: HttpDeps): Route[] {
  const dir = cp.config.policiesDir;
  const historyRoot = join(cp.config.dataDir, 'policy-history');
  let publishing: Promise<unknown> = Promise.resolve();

  const readCurrent = async (name: string): Promise<string | undefined> => {
    try {
      return await readFile(join(dir, checkName(name)), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  };

  const validate = async (name: string, content: string): Promise<{ ok: true; rules: number; roles: number; roleList: Role[] } | { ok: false; error: string }> => {
    const d = await loadDraft(dir, name, content);
    return d.ok ? { ok: true, rules: d.rules.rules.length, roles: d.roles.length, roleList: d.roles } : d;
  };

  // Roles on disk now (what the publish replaces) against the proposed ones; the publisher's
  // own can_edit_roles comes from the roles in force (access/role-change.ts).
  const roleChange = (identity: Identity, after: Role[]) => {
    let before: Role[];
    try {
      before = loadRoles(dir);
    } catch {
      before = cp.roles();
    }
    return checkRoleChange(identity, cp.roles(), before, after);
  };

  const history = async (name: string): Promise<VersionMeta[]> => {
    const d = join(historyRoot, checkName(name));
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return [];
    }
    const out: VersionMeta[] = [];
    for (const n of names.filter((x) => x.endsWith('.json')).sort().reverse()) {
      try {
        out.push(JSON.parse(await readFile(join(d, n), 'utf8')) as VersionMeta);
      } catch { /* skip a torn entry */ }
    }
    return out;
  };

  const keep = async (name: string, content: string, author: string, message: string): Promise<VersionMeta> => {
    const d = join(historyRoot, name);
    await mkdir(d, { recursive: true, mode: 0o700 });
    const version = `${Date.now()}-${randomBytes(4).toString('hex')}`;
    const v: VersionMeta = { version, file: name, author, time: new Date().toISOString(), sha256: sha(content), message, size: Buffer.byteLength(content) };
    await writeFile(join(d, `${version}.yaml`), content, { mode: 0o600 });
    await writeFile(join(d, `${version}.json`), JSON.stringify(v), { mode: 0o600 });
    return v;
  };

  return [
    {
      method: 'GET', path: '/api/v1/policy/files',
      handler: async ({ identity }) => {
        requireRead(cp, identity);
        const out = [];
        for (const f of (await readdir(dir)).filter((x) => NAME.test(x)).sort()) {
          const content = await readFile(join(dir, f), 'utf8');
          out.push({ name: f, size: (await stat(join(dir, f))).size, sha256: sha(content) });
        }
        return out;
      },
    },
    {
      method: 'GET', path: '/api/v1/policy/files/:name',
      handler: async ({ identity, params }) => {
        requireRead(cp, identity);
        const content = await readCurrent(params.name!);
        if (content === undefined) throw new HttpError(404, 'no such policy file');
        return { name: params.name, content, sha256: sha(content) };
      },
    },
    {
      method: 'POST', path: '/api/v1/policy/validate',
      handler: async ({ identity, body }) => {
        requireEdit(cp, identity);
        const name = checkName(field(body, 'name', { required: true, max: 100 })!);
        const content = field(body, 'content', { max: MAX_FILE }) ?? '';
        const check = await validate(name, content);
        if (!check.ok) return { ...check, line: errorLine(name, content, check.error) ?? null };
        const verdict = roleChange(identity, check.roleList);
        return { ok: true, rules: check.rules, roles: check.roles, roles_changed: verdict.rolesChanged, ...(verdict.allowed ? {} : { publish_refused: verdict.reason }) };
      },
    },
    {
      method: 'PUT', path: '/api/v1/policy/files/:name',
      handler: async ({ identity, params, body }) => {
        requireEdit(cp, identity);
        const name = checkName(params.name!);
        const content = field(body, 'content', { max: MAX_FILE }) ?? '';
        const base = field(body, 'base_sha256', { max: 64 });
        const message = field(body, 'message', { max: 500 }) ?? '';
        const run = async () => {
          const current = await readCurrent(name);
          if (base !== undefined && (current === undefined ? '' : sha(current)) !== base) throw new HttpError(409, 'the file changed since you opened it; reload and merge');
          if (base === undefined && current !== undefined) throw new HttpError(409, 'send base_sha256 of the version you edited');
          const check = await validate(name, content);
          if (!check.ok) throw new HttpError(400, check.error);
          const verdict = roleChange(identity, check.roleList);
          if (!verdict.allowed) {
            await cp.audit.append(auditBy(identity, 'policy.publish-refused', { file: name, why: verdict.reason }));
            throw new HttpError(403, verdict.reason);
          }
          // The version before the first edit through the UI is kept too, so it can be diffed and restored.
          if (current !== undefined && (await history(name)).length === 0) await keep(name, current, '(on disk before first publish)', '');
          const v = await keep(name, content, identity.user, message);
          const target = join(dir, name);
          const tmp = join(dir, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
          await writeFile(tmp, content, { mode: 0o644 });
          await rename(tmp, target);
          await cp.audit.append(auditBy(identity, 'policy.publish', { file: name, version: v.version, sha256: v.sha256, previous: current === undefined ? null : sha(current), message }));
          return { ...v, rules: check.rules, roles: check.roles, roles_changed: verdict.rolesChanged };
        };
        const p = publishing.then(run, run);
        publishing = p.catch(() => undefined);
        return p;
      },
    },
    {
      method: 'GET', path: '/api/v1/policy/files/:name/history',
      handler: async ({ identity, params }) => {
        requireRead(cp, identity);
        return history(params.name!);
      },
    },
    {
      method: 'GET', path: '/api/v1/policy/files/:name/history/:version',
      handler: async ({ identity, params }) => {
        requireRead(cp, identity);
        const name = checkName(params.name!);
        if (!VERSION.test(params.version!)) throw new HttpError(404, 'no such version');
        try {
          return { name, version: params.version, content: await readFile(join(historyRoot, name, `${params.version}.yaml`), 'utf8') };
        } catch {
          throw new HttpError(404, 'no such version');
        }
      },
    },
  ];
}
