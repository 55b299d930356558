import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startHttpServer } from '../../replay-ui/server/http.js';
import type { Listener } from '../../proxy/broker.types.js';
import type { Target } from '../../config/config.types.js';

const run = promisify(execFile);
const targets: Target[] = [
  { name: 'web1', protocol: 'ssh', host: '127.0.0.1', port: 22, hostKey: 'ssh-ed25519 AAAA', logins: { root: { secret: 's2' } }, defaultAction: 'allow' },
];

let cp: TestControlPlane;
let http: Listener;
let base: string;
beforeAll(async () => {
  cp = await startControlPlane({ targets });
  http = await startHttpServer(cp.deps, { host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${http.port}`;
});
afterAll(async () => {
  await http.close();
  await cp.close();
});

const api = async (method: string, path: string, token?: string, body?: unknown) => {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
};

/** Runs the real CLI as a user would, against the real server. */
const pam = async (args: string[], token: string) => {
  try {
    const { stdout, stderr } = await run('node', ['bin/pam.js', ...args], { env: { ...process.env, PAM_SERVER: base, PAM_TOKEN: token } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

describe('HTTP API', () => {
  it('refuses missing, malformed and bad tokens with 401 JSON and audits without the token', async () => {
    expect((await api('GET', '/api/v1/grants')).status).toBe(401);
    const forged = (await cp.token('alice')).replace(/\.[^.]+$/, '.AAAA');
    const r = await api('GET', '/api/v1/grants', forged);
    expect(r.status).toBe(401);
    expect(r.body.error.message).toMatch(/token rejected/);
    const audit = await cp.audit();
    const rejected = audit.filter((e) => e.type === 'token.rejected');
    expect(rejected.length).toBeGreaterThan(0);
    expect(JSON.stringify(audit)).not.toContain(forged.split('.')[1]);
  });

  it('answers bad input with precise 4xx and keeps serving', async () => {
    const t = await cp.token('alice');
    expect((await api('POST', '/api/v1/requests', t, { target: 'web1', duration: '1h' })).body.error.message).toMatch(/"login" is required/);
    expect((await api('POST', '/api/v1/requests', t, { target: 'web1', login: 'root', duration: 'soon', reason: 'x' })).status).toBe(400);
    const raw = await fetch(base + '/api/v1/requests', { method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' }, body: '{not json' });
    expect(raw.status).toBe(400);
    expect((await api('GET', '/api/v1/nope', t)).status).toBe(404);
    expect((await api('GET', '/api/v1/audit', t)).status).toBe(403);
    expect((await api('GET', '/api/v1/recordings/..%2F..%2Fetc%2Fpasswd', await cp.token('sam', ['approvers']))).status).toBe(404);
    expect((await api('GET', '/healthz')).status).toBe(200);
  });

  it('runs the JIT flow through the CLI', async () => {
    const alice = await cp.token('alice', ['admins']);
    const sam = await cp.token('sam', ['approvers']);
    const req = await pam(['request', '--target', 'web1', '--login', 'root', '--duration', '30m', '--reason', 'deploy', '--json'], alice);
    expect(req.code).toBe(0);
    const id = JSON.parse(req.stdout).id as string;
    const self = await pam(['approve', id], alice);
    expect(self.code).not.toBe(0);
    expect(self.stderr).toMatch(/own request/);
    expect((await pam(['requests'], sam)).stdout).toContain(id);
    expect((await pam(['approve', id, '--reason', 'ok'], sam)).code).toBe(0);
    const grants = JSON.parse((await pam(['grants', '--json'], alice)).stdout);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({ user: 'alice', target: 'web1', login: 'root' });
    expect(grants[0].id).toMatch(/^gr_/);
    const audit = await pam(['audit', '--json', '--since', '1h'], sam);
    expect(JSON.parse(audit.stdout).map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(['request', 'approve', 'grant']));
    expect((await pam(['audit'], alice)).code).toBe(3);
    expect((await pam(['revoke', grants[0].id], alice)).code).toBe(0);
    expect(JSON.parse((await pam(['grants', '--json'], alice)).stdout)).toEqual([]);
    expect((await pam(['audit', 'verify'], sam)).stdout).toMatch(/intact/);
  });
});
