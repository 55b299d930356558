import { describe, expect, it } from 'vitest';
import { parseConfig, ConfigError, loadConfig } from '../../config/config.js';
import { parseDuration } from '../../config/duration.js';
import { parseRoles, PolicyFileError } from '../../policies/roles.js';

const base = () => ({
  listen: { ssh: '127.0.0.1:2222', postgres: '127.0.0.1:6432', http: '127.0.0.1:8080' },
  identity: { issuer: 'https://idp.example.com', audience: 'pam-proxy' },
  targets: [
    { name: 'web1', protocol: 'ssh', address: '10.0.0.5:22', host_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA', logins: { root: { secret: 'web1-root' } } },
    { name: 'appdb', protocol: 'postgres', address: '10.0.0.6:5432', database: 'app', logins: { app_rw: { secret: 'appdb-rw' } } },
  ],
});

function errorOf(doc: unknown): ConfigError {
  try {
    parseConfig(doc, '/etc/pam/pam.yaml');
  } catch (e) {
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('accepts the documented shape and resolves paths against the file', () => {
    const c = parseConfig({ ...base(), data_dir: './data', policies_dir: 'pol' }, '/etc/pam/pam.yaml');
    expect(c.dataDir).toBe('/etc/pam/data');
    expect(c.policiesDir).toBe('/etc/pam/pol');
    expect(c.listen.ssh).toEqual({ host: '127.0.0.1', port: 2222 });
    expect(c.targets[1]).toMatchObject({ name: 'appdb', protocol: 'postgres', host: '10.0.0.6', port: 5432, database: 'app', tls: 'prefer' });
    expect(c.identity).toMatchObject({ issuer: 'https://idp.example.com', groupsClaim: 'groups', dev: false });
    expect(c.reviewTimeoutMs).toBe(300_000);
    expect(parseConfig({ ...base(), review_timeout: '90s' }, '/x.yaml').reviewTimeoutMs).toBe(90_000);
  });

  it.each([
    [{ ...base(), lissten: {} }, 'lissten', /unknown key/],
    [{ ...base(), listen: { http: 'nope' } }, 'listen.http', /not host:port/],
    [{ ...base(), store: 'mysql://x' }, 'store', /embedded/],
    [{ ...base(), identity: { audience: 'x' } }, 'identity.issuer', /required/],
    [{ ...base(), targets: [{ ...base().targets[0], protocol: 'telnet' }] }, 'targets[0].protocol', /not supported/],
    [{ ...base(), targets: [{ ...base().targets[0], host_key: 'garbage' }] }, 'targets[0].host_key', /OpenSSH public key/],
    [{ ...base(), targets: [base().targets[0], base().targets[0]] }, 'targets[1].name', /twice/],
    [{ ...base(), targets: [{ ...base().targets[1], tls: 'verify-full' }] }, 'targets[0].ca_file', /required/],
    [{ ...base(), targets: [{ ...base().targets[1], logins: {} }] }, 'targets[0].logins', /secret/],
    [{ ...base(), postgres: { max_message_bytes: 5 } }, 'postgres.max_message_bytes', /at least/],
    [{ ...base(), review_timeout: 'a while' }, 'review_timeout', /not a duration/],
    [{ ...base(), listen: { http: '10.0.0.9:8080' } }, 'listen.http', /in clear/],
    [{ ...base(), listen: { http: 'https://127.0.0.1:8443' } }, 'http.tls_cert', /required when listen.http is https/],
    [{ ...base(), http: { tls_cert: 'c.pem' } }, 'http.tls_key', /go together/],
    [{ ...base(), listen: { http: '0.0.0.0:8443' }, http: { tls_cert: 'c.pem', tls_key: 'k.pem' } }, 'public_url', /required when listen.http is 0.0.0.0/],
    [{ ...base(), http: { tls: true } }, 'http.tls', /unknown key/],
    [{ ...base(), login_timeout: 'soon' }, 'login_timeout', /duration/],
    [{ ...base(), login_timeout: '0s' }, 'login_timeout', /./],
    [{ ...base(), max_unauthenticated_per_source: 0 }, 'max_unauthenticated_per_source', /whole number/],
    [{ ...base(), postgres: { upstream_pool: { size: -1 } } }, 'postgres.upstream_pool.size', /whole number/],
    [{ ...base(), postgres: { upstream_pool: { idle_timeout: 'later' } } }, 'postgres.upstream_pool.idle_timeout', /duration/],
    [{ ...base(), postgres: { upstream_pool: { sise: 2 } } }, 'postgres.upstream_pool.sise', /unknown key/],
    [{ ...base(), postgres: { upstream_pool: 'yes' } }, 'postgres.upstream_pool', /mapping/],
  ])('names the bad key (%#)', (doc, key, why) => {
    const e = errorOf(doc);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.key).toBe(key);
    expect(e.message).toMatch(why);
  });

  it('reads the HTTP listener\'s TLS from https:// or tls_cert/tls_key, and plain HTTP beyond loopback only when asked', () => {
    const a = parseConfig({ ...base(), listen: { http: 'https://127.0.0.1:8443/' }, http: { tls_cert: 'c.pem', tls_key: 'k.pem' } }, '/etc/pam/pam.yaml');
    expect(a.listen.http).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(a.http).toEqual({ tls: { cert: '/etc/pam/c.pem', key: '/etc/pam/k.pem' }, allowPlaintext: false });
    const b = parseConfig({ ...base(), listen: { http: '0.0.0.0:8443' }, public_url: 'https://pam.example.com', http: { tls_cert: 'c.pem', tls_key: 'k.pem' } }, '/etc/pam/pam.yaml');
    expect(b.http?.tls).toBeDefined();
    const c = parseConfig({ ...base(), listen: { http: '10.0.0.9:8080' }, http: { allow_plaintext: true } }, '/etc/pam/pam.yaml');
    expect(c.http).toEqual({ allowPlaintext: true });
    expect(parseConfig(base(), '/x.yaml').http).toEqual({ allowPlaintext: false });
  });

  it('reads postgres.upstream_pool: on by default, false or size 0 off', () => {
    expect(parseConfig(base(), '/x.yaml').postgres.upstreamPool).toEqual({ size: 8, idleTimeoutMs: 60_000 });
    expect(parseConfig({ ...base(), postgres: { upstream_pool: { size: 2, idle_timeout: '5m' } } }, '/x.yaml').postgres.upstreamPool).toEqual({ size: 2, idleTimeoutMs: 300_000 });
    expect(parseConfig({ ...base(), postgres: { upstream_pool: false } }, '/x.yaml').postgres.upstreamPool?.size).toBe(0);
    expect(parseConfig({ ...base(), postgres: { upstream_pool: { size: 0 } } }, '/x.yaml').postgres.upstreamPool?.size).toBe(0);
  });

  it('reads the limits before login, with defaults', () => {
    expect(parseConfig(base(), '/x.yaml').login).toEqual({ loginTimeoutMs: 30_000, maxUnauthenticatedPerSource: 16 });
    expect(parseConfig({ ...base(), login_timeout: '5s', max_unauthenticated_per_source: 3 }, '/x.yaml').login).toEqual({ loginTimeoutMs: 5000, maxUnauthenticatedPerSource: 3 });
  });

  it('loads the shipped example config', () => {
    const c = loadConfig('examples/pam.yaml');
    expect(c.identity.dev).toBe(true);
    expect(c.targets.map((t) => t.name)).toContain('localdb');
  });

  it('reports unreadable files and bad YAML precisely', () => {
    expect(() => loadConfig('/nonexistent/pam.yaml')).toThrow(/cannot read .*ENOENT/);
  });
});

describe('durations and roles', () => {
  it('parses durations', () => {
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(() => parseDuration('30 minutes')).toThrow(/not a duration/);
    expect(() => parseDuration('0s')).toThrow(/longer than zero/);
  });

  it('parses the documented role shape', () => {
    const [dba, sec] = parseRoles({
      roles: [
        { name: 'dba', groups: ['dba'], can_request: [{ targets: ['appdb'], logins: ['app_rw'], max_duration: '1h' }] },
        { name: 'security', groups: ['security'], can_approve: ['dba', 'sre'], can_audit: true, can_edit_policies: true },
      ],
    }, 'roles.yaml');
    expect(dba!.canRequest[0]).toEqual({ targets: ['appdb'], logins: ['app_rw'], maxDurationMs: 3_600_000 });
    expect(sec).toMatchObject({ canApprove: ['dba', 'sre'], canAudit: true, canEditPolicies: true });
  });

  it('names the bad role key', () => {
    expect(() => parseRoles({ roles: [{ name: 'x', can_request: [{ targets: [], logins: [], max_duration: 'forever' }] }] }, 'r.yaml')).toThrow(PolicyFileError);
    expect(() => parseRoles({ roles: [{ name: 'x', can_aprove: [] }] }, 'r.yaml')).toThrow(/roles\[0\]\.can_aprove: unknown key/);
  });
});
