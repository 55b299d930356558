import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { parseConfig } from '../../config/config.js';
import { configSchema } from '../../config/config-schema.js';

type S = Record<string, any>;

/** The subset of JSON Schema configSchema() uses, enough to hold a document against it. */
function errors(schema: S, v: unknown, path = '$'): string[] {
  if (schema.oneOf) {
    const ok = (schema.oneOf as S[]).filter((s) => errors(s, v, path).length === 0).length;
    return ok === 1 ? [] : [`${path}: matches ${ok} of oneOf`];
  }
  if (schema.const !== undefined && v !== schema.const) return [`${path}: not ${schema.const}`];
  if (schema.enum && !schema.enum.includes(v)) return [`${path}: not one of ${schema.enum}`];
  const type = Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v === 'object' && v !== null ? 'object' : typeof v;
  if (schema.type && schema.type !== type && !(schema.type === 'number' && type === 'integer')) return [`${path}: ${type}, not ${schema.type}`];
  const out: string[] = [];
  if (type === 'string') {
    if (schema.minLength && (v as string).length < schema.minLength) out.push(`${path}: too short`);
    if (schema.pattern && !new RegExp(schema.pattern).test(v as string)) out.push(`${path}: does not match ${schema.pattern}`);
  }
  if (type === 'integer' && schema.minimum !== undefined && (v as number) < schema.minimum) out.push(`${path}: below ${schema.minimum}`);
  if (type === 'array' && schema.items) (v as unknown[]).forEach((x, i) => out.push(...errors(schema.items, x, `${path}[${i}]`)));
  if (type === 'object') {
    const o = v as S;
    for (const r of schema.required ?? []) if (!(r in o)) out.push(`${path}.${r}: required`);
    if (schema.minProperties && Object.keys(o).length < schema.minProperties) out.push(`${path}: too few keys`);
    for (const [k, x] of Object.entries(o)) {
      const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      if (sub) out.push(...errors(sub, x, `${path}.${k}`));
      else if (schema.additionalProperties === false) out.push(`${path}.${k}: unknown key`);
    }
  }
  return out;
}

/** Every section and key the parser accepts, in one file the parser takes. */
const kitchenSink = () => ({
  listen: { ssh: '127.0.0.1:2222', postgres: '127.0.0.1:6432', http: 'https://127.0.0.1:8443', metrics: '127.0.0.1:9464' },
  data_dir: './data', store: 'redis://127.0.0.1:6379/0', policies_dir: './policies',
  identity: { issuer: 'https://idp.example.com', audience: 'pam-proxy', groups_claim: 'groups', dev: false },
  targets: [
    { name: 'web1', protocol: 'ssh', address: '10.0.0.5:22', host_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA', logins: { root: { secret: 'web1-root' } },
      default_action: 'review', recording: { mode: 'best-effort' }, require_mfa: true, max_auth_age: '15m',
      rotation: { every: '24h', after_session: true, authorized_keys: '~/.ssh/authorized_keys', login: 'root' } },
    { name: 'appdb', protocol: 'postgres', address: '10.0.0.6:5432', database: 'app', tls: 'verify-full', ca_file: 'ca.pem',
      logins: { app_rw: { secret: 'appdb-rw' } }, rotation: { every: '1h', login: 'app_rw' } },
  ],
  ssh: { host_key_file: './host_key', env_allow: ['LANG'] },
  postgres: { tls_cert: 'c.pem', tls_key: 'k.pem', allow_plaintext_tokens: false, max_message_bytes: 1048576, redact_parameters: true },
  http: { tls_cert: 'h.pem', tls_key: 'hk.pem', allow_plaintext: false, max_body_bytes: 65536, headers_timeout: '10s', request_timeout: '30s' },
  login_timeout: '20s', max_unauthenticated_per_source: 8,
  review_timeout: '5m',
  log: { level: 'warn', format: 'json' },
  audit_export: [{ url: 'syslog+tls://siem:6514', name: 'siem', ca_file: 'ca.pem', batch_max: 10, spool_max_bytes: 8192 }, { url: 'https://h.example/x', secret_file: 'k' }],
  shutdown_grace: '10s',
  evidence: { signing_key_file: '/etc/pam-keys/evidence.key', witness: 'file:///var/lib/pam-witness/w', previous_public_keys: ['/etc/pam-keys/old.pub'], checkpoint_interval: '5s', origin: 'node-a' },
  mfa: { acr_values: ['phr'] }, scim: { token_file: 'scim.token' },
  notify: [{ url: 'https://chat.example/hook', events: ['request.created'], secret_file: 'n.key' }],
  offboarding: { rotate_used_within: '30d' }, public_url: 'https://pam.example.com',
});

describe('config schema', () => {
  it('holds every key the parser accepts, and the shipped example', () => {
    const doc = kitchenSink();
    expect(() => parseConfig(doc, '/etc/pam/pam.yaml')).not.toThrow();
    expect(errors(configSchema(), doc)).toEqual([]);
    expect(errors(configSchema(), YAML.parse(readFileSync('examples/pam.yaml', 'utf8')))).toEqual([]);
  });

  it('flags what the parser refuses: a misspelt key, a wrong type, a missing section', () => {
    const schema = configSchema();
    expect(errors(schema, { ...kitchenSink(), shutdown_grase: '1s' })).toEqual(['$.shutdown_grase: unknown key']);
    expect(errors(schema, { ...kitchenSink(), log: { level: 'loud' } })[0]).toMatch(/log.level/);
    expect(errors(schema, { ...kitchenSink(), audit_export: [{ url: 'kafka://x:1' }] })[0]).toMatch(/audit_export\[0\].url/);
    const { identity: _, ...noIdentity } = kitchenSink();
    expect(errors(schema, noIdentity)).toEqual(['$.identity: required']);
    const t = kitchenSink();
    (t.targets[0] as S).hostkey = 'x';
    expect(errors(schema, t)[0]).toMatch(/targets\[0\]/);
  });
});
