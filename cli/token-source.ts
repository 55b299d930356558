/**
 * Where the CLI finds the caller's IAM token (issue 12), in order:
 *   --token-file FILE   the file's content (keep it 0600)
 *   --token TOKEN       still works, with a warning: arguments are visible to every user of the
 *                       machine (ps, /proc) and end up in shell history
 *   PAM_TOKEN           the environment
 *   the login cache     written by `pam login` (token on stdin), for the same server, until
 *                       the token expires: $XDG_CONFIG_HOME/pam/login.json (0600)
 */
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './api-client.js';

export interface TokenFlags { token?: string; tokenFile?: string }

export function loginCachePath(env = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'pam', 'login.json');
}

interface Cached { server: string; token: string; expiresAt: number }

/** `exp` of a JWT, ms; undefined when unreadable (the server decides validity anyway). */
function expiryOf(token: string): number | undefined {
  try {
    const exp = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read --token-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
  }
  const token = text.trim();
  if (!token) throw new CliError(`--token-file ${file} is empty`, 2);
  if (process.platform !== 'win32' && ((await stat(file)).mode & 0o077) !== 0) {
    process.stderr.write(`pam: warning: ${file} is readable by other users; chmod 600 ${file}\n`);
  }
  return token;
}

/** The token to use against `server`, or undefined when there is none. */
export async function resolveToken(flags: TokenFlags, server: string, env = process.env, warn = (m: string) => process.stderr.write(m)): Promise<string | undefined> {
  if (flags.tokenFile) return readTokenFile(flags.tokenFile);
  if (flags.token) {
    warn('pam: warning: --token puts your token in the process list and shell history; use PAM_TOKEN, --token-file FILE or `pam login`\n');
    return flags.token;
  }
  if (env.PAM_TOKEN) return env.PAM_TOKEN;
  return (await readCache(server, env))?.token;
}

async function readCache(server: string, env: NodeJS.ProcessEnv): Promise<Cached | undefined> {
  try {
    const c = JSON.parse(await readFile(loginCachePath(env), 'utf8')) as Cached;
    if (c.server !== server || typeof c.token !== 'string') return undefined;
    if (c.expiresAt <= Date.now()) return undefined;
    return c;
  } catch {
    return undefined;
  }
}

/** Writes the login cache (0600, atomically). Returns where and until when. */
export async function writeCache(server: string, token: string, env = process.env): Promise<{ file: string; expiresAt: number | undefined }> {
  const file = loginCachePath(env);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const expiresAt = expiryOf(token);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ server, token, expiresAt: expiresAt ?? Date.now() + 8 * 3600_000 }), { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return { file, expiresAt };
}

export async function removeCache(env = process.env): Promise<string> {
  const file = loginCachePath(env);
  await rm(file, { force: true });
  return file;
}
