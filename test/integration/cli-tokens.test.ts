/**
 * Where the CLI takes the token from (issue 12), against the real `pam serve` process:
 * --token-file, PAM_TOKEN, the cache `pam login` writes (0600), and --token with a warning.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPamProcess, type PamProcess } from '../helpers/pam-process.js';

let pam: PamProcess;
let home: string;
let token: string;

beforeAll(async () => {
  pam = await startPamProcess({ roles: 'roles:\n  - name: security\n    groups: [security]\n    can_audit: true\n' });
  token = (await pam.pam(['dev', 'token', 'sam', '--groups', 'security'])).stdout.trim();
  home = await mkdtemp(join(tmpdir(), 'pam-cli-home-'));
}, 60_000);

afterAll(async () => {
  await pam?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

const env = () => ({ PAM_TOKEN: '', XDG_CONFIG_HOME: home });
const user = (stdout: string) => (JSON.parse(stdout) as { user: string }).user;

describe('CLI token sources', () => {
  it('warns when the token is an argument, and not otherwise', async () => {
    const arg = await pam.pam(['whoami', '--json', '--token', token], env());
    expect(user(arg.stdout)).toBe('sam');
    expect(arg.stderr).toContain('warning: --token puts your token in the process list');
    const viaEnv = await pam.pam(['whoami', '--json'], { ...env(), PAM_TOKEN: token });
    expect(user(viaEnv.stdout)).toBe('sam');
    expect(viaEnv.stderr).toBe('');
  });

  it('reads --token-file, and warns about a file others can read', async () => {
    const file = join(home, 'token');
    await writeFile(file, token + '\n', { mode: 0o600 });
    const ok = await pam.pam(['whoami', '--json', '--token-file', file], env());
    expect(user(ok.stdout)).toBe('sam');
    expect(ok.stderr).toBe('');
    await chmod(file, 0o644);
    expect((await pam.pam(['whoami', '--json', '--token-file', file], env())).stderr).toContain('readable by other users');
    const missing = await pam.pam(['whoami', '--token-file', join(home, 'nope')], env());
    expect(missing.code).toBe(2);
  });

  it('caches a login 0600 for the same server, and forgets it at logout', async () => {
    expect((await pam.pam(['whoami'], env())).code).toBe(2);
    const login = await pam.pam(['login'], env(), token + '\n');
    expect(login.stderr).toBe('');
    expect(login.stdout).toMatch(/^signed in as sam at http:\/\/127\.0\.0\.1:\d+; token cached in /);
    const cache = join(home, 'pam', 'login.json');
    expect((await stat(cache)).mode & 0o777).toBe(0o600);
    expect(user((await pam.pam(['whoami', '--json'], env())).stdout)).toBe('sam');
    // Another server does not get this token.
    expect((await pam.pam(['whoami'], { ...env(), PAM_SERVER: 'http://127.0.0.1:1' })).stderr).toContain('no token');
    // A bad token is not cached.
    expect((await pam.pam(['login'], env(), 'not-a-token\n')).code).toBe(3);
    expect(JSON.parse(await readFile(cache, 'utf8')).token).toBe(token);
    expect((await pam.pam(['logout'], env())).code).toBe(0);
    expect((await pam.pam(['whoami'], env())).code).toBe(2);
  });
});
