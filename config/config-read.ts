/** Small readers shared by the config parsers: each names the dotted key it rejects. */
/** A bad configuration: `key` is the dotted path of the offending key. */
export class ConfigError extends Error {
  constructor(public readonly key: string, why: string) {
    super(`config: ${key}: ${why}`);
    this.name = 'ConfigError';
  }
}

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function known(obj: Obj, path: string, keys: string[]): void {
  for (const k of Object.keys(obj)) {
    if (!keys.includes(k)) throw new ConfigError(path ? `${path}.${k}` : k, `unknown key (expected one of: ${keys.join(', ')})`);
  }
}

export function str(obj: Obj, key: string, path: string, required: true): string;
export function str(obj: Obj, key: string, path: string, required?: boolean): string | undefined;
export function str(obj: Obj, key: string, path: string, required = false): string | undefined {
  const v = obj[key];
  const p = path ? `${path}.${key}` : key;
  if (v === undefined || v === null) {
    if (required) throw new ConfigError(p, 'is required');
    return undefined;
  }
  if (typeof v !== 'string' || v.trim() === '') throw new ConfigError(p, 'must be a non-empty string');
  return v;
}

export function bool(obj: Obj, key: string, path: string, dflt: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new ConfigError(`${path}.${key}`, 'must be true or false');
  return v;
}

