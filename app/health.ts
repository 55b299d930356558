import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../access/store.types.js';
import type { IdentityVerifier } from '../access/identity.types.js';

export interface CheckResult { name: string; ok: boolean; error?: string }

export interface Readiness {
  /** Runs every check (each bounded by a timeout); `ok` only if all pass. */
  check(): Promise<{ ok: boolean; checks: CheckResult[] }>;
  /** Listeners are up: set once `pam serve` has opened them, cleared when it starts stopping. */
  setListening(up: boolean): void;
  /** The last store check (for the store-availability metric); undefined before the first. */
  readonly storeUp: boolean | undefined;
}

const CHECK_TIMEOUT_MS = 2000;

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms); }),
  ]);
}

/**
 * `/readyz`: is this node fit to take sessions? A load balancer drains it on 503, so each check
 * names itself and says why in a line; nothing secret goes in (store URLs are never shown).
 * - listeners: the configured ssh/postgres/http listeners are open (false while stopping)
 * - store: a read from the state store answers (grants cannot be checked without it)
 * - recordings: a probe file can be written in the recordings folder (sessions fail closed
 *   without a recording)
 * - identity: the issuer's signing keys are loaded (tokens cannot be verified without them)
 */
export function createReadiness(deps: { store: Store; recordingsDir: string; identity: IdentityVerifier; onStore?: (up: boolean, err?: Error) => void }): Readiness {
  let listening = false;
  let storeUp: boolean | undefined;
  const probe = join(deps.recordingsDir, `.ready-probe-${process.pid}`);
  const run = async (name: string, fn: () => Promise<unknown>): Promise<CheckResult> => {
    try {
      await within(fn(), CHECK_TIMEOUT_MS, name);
      return { name, ok: true };
    } catch (err) {
      return { name, ok: false, error: (err as Error)?.message ?? String(err) };
    }
  };
  return {
    setListening(up) {
      listening = up;
    },
    get storeUp() {
      return storeUp;
    },
    async check() {
      const checks = await Promise.all([
        run('listeners', async () => { if (!listening) throw new Error('listeners are not open (starting or stopping)'); }),
        run('store', () => deps.store.get('health', 'ready')).then((r) => {
          if (storeUp !== r.ok) deps.onStore?.(r.ok, r.ok ? undefined : new Error(r.error));
          storeUp = r.ok;
          return r.ok ? r : { ...r, error: `store unreachable: ${r.error}` };
        }),
        run('recordings', async () => {
          await writeFile(probe, 'ok', { mode: 0o600 });
          await unlink(probe);
        }),
        run('identity', async () => deps.identity.ready?.()),
      ]);
      return { ok: checks.every((c) => c.ok), checks };
    },
  };
}
