/**
 * The lifecycle keys of the config file (issue 17): per-target `rotation`, `require_mfa` and
 * `max_auth_age`, and the top-level `mfa`, `scim`, `notify`, `offboarding` and `public_url`.
 * Kept beside config.ts so that file stays about listeners, identity and targets.
 */
import { isAbsolute, resolve } from 'node:path';
import { parseDuration } from './duration.js';
import { NOTIFY_EVENTS, type Config, type NotifyConfig, type NotifyEvent, type RotationConfig } from './config.types.js';

/** Thrown as ConfigError by the caller (config.ts owns the class; this file must not import it back). */
export class LifecycleConfigError extends Error {
  constructor(public readonly key: string, public readonly why: string) {
    super(`${key}: ${why}`);
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const fail = (key: string, why: string): never => {
  throw new LifecycleConfigError(key, why);
};

function known(obj: Obj, path: string, keys: string[]): void {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) fail(`${path}.${k}`, `unknown key (expected one of: ${keys.join(', ')})`);
}

function duration(v: unknown, key: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return fail(key, 'must be a duration like 15m or 24h');
  try {
    return parseDuration(v);
  } catch (e) {
    return fail(key, (e as Error).message);
  }
}

function flag(v: unknown, key: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') return fail(key, 'must be true or false');
  return v;
}

function text(v: unknown, key: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim() === '') return fail(key, 'must be a non-empty string');
  return v;
}

/** Keys a target may carry besides its protocol keys. */
export const TARGET_LIFECYCLE_KEYS = ['rotation', 'require_mfa', 'max_auth_age'];

/** `rotation`, `require_mfa`, `max_auth_age` of one target. */
export function parseTargetLifecycle(
  v: Obj,
  path: string,
  protocol: 'ssh' | 'postgres',
  logins: string[],
): { rotation?: RotationConfig; requireMfa?: boolean; maxAuthAgeMs?: number } {
  const out: { rotation?: RotationConfig; requireMfa?: boolean; maxAuthAgeMs?: number } = {};
  const requireMfa = flag(v.require_mfa, `${path}.require_mfa`);
  if (requireMfa !== undefined) out.requireMfa = requireMfa;
  const maxAuthAgeMs = duration(v.max_auth_age, `${path}.max_auth_age`);
  if (maxAuthAgeMs !== undefined) out.maxAuthAgeMs = maxAuthAgeMs;
  if (v.rotation !== undefined && v.rotation !== null) {
    const rp = `${path}.rotation`;
    if (!isObj(v.rotation)) return fail(rp, 'must be { every, after_session, authorized_keys, login }');
    known(v.rotation, rp, protocol === 'ssh' ? ['every', 'after_session', 'authorized_keys', 'login'] : ['every', 'after_session', 'login']);
    const rotation: RotationConfig = { afterSession: flag(v.rotation.after_session, `${rp}.after_session`) ?? false };
    const every = duration(v.rotation.every, `${rp}.every`);
    if (every !== undefined) {
      if (every < 60_000) fail(`${rp}.every`, 'must be at least 1m');
      rotation.everyMs = every;
    }
    const keys = text(v.rotation.authorized_keys, `${rp}.authorized_keys`);
    if (keys !== undefined) {
      // The path goes into a shell script on the target: keep it to plain path characters.
      if (!/^(~\/)?[A-Za-z0-9_./%-]+$/.test(keys)) fail(`${rp}.authorized_keys`, 'letters, digits, "/", ".", "_", "-", "%u" and a leading "~/" only');
      rotation.authorizedKeys = keys;
    }
    const login = text(v.rotation.login, `${rp}.login`);
    if (login !== undefined) {
      if (!logins.includes(login)) fail(`${rp}.login`, `"${login}" is not one of this target's logins (${logins.join(', ')})`);
      rotation.login = login;
    }
    out.rotation = rotation;
  }
  return out;
}

/** Top-level keys this file parses. */
export const TOP_LIFECYCLE_KEYS = ['mfa', 'scim', 'notify', 'offboarding', 'public_url'];

export function parseTopLifecycle(doc: Obj, base: string): Pick<Config, 'mfa' | 'scim' | 'notify' | 'offboarding' | 'publicUrl'> {
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const out: Pick<Config, 'mfa' | 'scim' | 'notify' | 'offboarding' | 'publicUrl'> = {};
  if (doc.mfa !== undefined) {
    if (!isObj(doc.mfa)) fail('mfa', 'must be { acr_values: [...] }');
    const m = doc.mfa as Obj;
    known(m, 'mfa', ['acr_values']);
    const acr = m.acr_values ?? [];
    if (!Array.isArray(acr) || acr.some((a) => typeof a !== 'string' || a === '')) fail('mfa.acr_values', 'must be a list of acr values');
    out.mfa = { acrValues: acr as string[] };
  }
  if (doc.scim !== undefined) {
    if (!isObj(doc.scim)) fail('scim', 'must be { token_file: FILE }');
    const s = doc.scim as Obj;
    known(s, 'scim', ['token_file']);
    const file = text(s.token_file, 'scim.token_file') ?? fail('scim.token_file', 'is required');
    out.scim = { tokenFile: rel(file) };
  }
  if (doc.notify !== undefined) {
    if (!Array.isArray(doc.notify)) fail('notify', 'must be a list of { url, events, secret_file }');
    out.notify = (doc.notify as unknown[]).map((n, i): NotifyConfig => {
      const p = `notify[${i}]`;
      if (!isObj(n)) return fail(p, 'must be { url, events, secret_file }');
      known(n, p, ['url', 'events', 'secret_file']);
      const url = text(n.url, `${p}.url`) ?? fail(`${p}.url`, 'is required');
      if (!/^https?:\/\//.test(url)) fail(`${p}.url`, 'must be an http(s) URL');
      const events = n.events ?? [...NOTIFY_EVENTS];
      if (!Array.isArray(events) || events.length === 0 || events.some((e) => !(NOTIFY_EVENTS as readonly unknown[]).includes(e))) {
        fail(`${p}.events`, `must be a list of: ${NOTIFY_EVENTS.join(', ')}`);
      }
      const secretFile = text(n.secret_file, `${p}.secret_file`);
      return { url, events: events as NotifyEvent[], ...(secretFile ? { secretFile: rel(secretFile) } : {}) };
    });
  }
  if (doc.offboarding !== undefined) {
    if (!isObj(doc.offboarding)) fail('offboarding', 'must be { rotate_used_within: 30d }');
    const o = doc.offboarding as Obj;
    known(o, 'offboarding', ['rotate_used_within']);
    out.offboarding = { rotateUsedWithinMs: duration(o.rotate_used_within, 'offboarding.rotate_used_within') ?? 30 * 86_400_000 };
  }
  const publicUrl = text(doc.public_url, 'public_url');
  if (publicUrl !== undefined) {
    if (!/^https?:\/\//.test(publicUrl)) fail('public_url', 'must be an http(s) URL');
    out.publicUrl = publicUrl.replace(/\/+$/, '');
  }
  return out;
}
