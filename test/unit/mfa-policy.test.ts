import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { combineMfa, hasMfa, mfaRefusal, MFA_AMR } from '../../access/mfa-policy.js';
import { parseRoles } from '../../policies/roles.js';
import { parseConfig } from '../../config/config.js';

const now = Date.UTC(2026, 11, 1, 12);
const what = 'opening root@web1';

describe('mfa policy (pure)', () => {
  it('refuses a password-only token when MFA is required, naming what it has and needs', () => {
    const why = mfaRefusal({ amr: ['pwd'] }, { requireMfa: true }, { now, what });
    expect(why).toMatch(/^opening root@web1 needs a multi-factor sign-in \(your token has amr pwd, none of mfa, otp/);
    expect(mfaRefusal({}, { requireMfa: true }, { now, what })).toMatch(/no amr claim/);
  });

  it('accepts every registered second-factor amr value, and a configured acr', () => {
    for (const m of MFA_AMR) expect(mfaRefusal({ amr: ['pwd', m] }, { requireMfa: true }, { now, what })).toBeUndefined();
    expect(mfaRefusal({ acr: 'urn:acme:loa:high' }, { requireMfa: true }, { now, what, acrValues: ['urn:acme:loa:high'] })).toBeUndefined();
    expect(mfaRefusal({ acr: 'urn:acme:loa:low' }, { requireMfa: true }, { now, what, acrValues: ['urn:acme:loa:high'] })).toMatch(/acr "urn:acme:loa:low" is not one of urn:acme:loa:high/);
  });

  it('enforces max_auth_age from auth_time, and refuses a token without auth_time', () => {
    const rule = { maxAuthAgeMs: 15 * 60_000 };
    expect(mfaRefusal({ authTime: now - 14 * 60_000 }, rule, { now, what })).toBeUndefined();
    expect(mfaRefusal({ authTime: now - 2 * 3600_000 }, rule, { now, what })).toMatch(/within the last 15m \(you signed in 2h ago\)/);
    expect(mfaRefusal({}, rule, { now, what })).toMatch(/no auth_time/);
  });

  it('combines rules strictly', () => {
    expect(combineMfa({ maxAuthAgeMs: 3600_000 }, undefined, { requireMfa: true, maxAuthAgeMs: 900_000 }, {})).toEqual({ requireMfa: true, maxAuthAgeMs: 900_000 });
    expect(combineMfa()).toEqual({});
  });

  it('never accepts a token without a second-factor amr or listed acr (property)', () => {
    fc.assert(fc.property(fc.array(fc.string().filter((s) => !(MFA_AMR as readonly string[]).includes(s))), fc.option(fc.string(), { nil: undefined }), (amr, acr) => {
      expect(hasMfa({ amr, acr }, ['listed-only'])).toBe(acr === 'listed-only');
    }));
  });

  it('reads require_mfa and max_auth_age from roles, scopes and targets', () => {
    const [r] = parseRoles({ roles: [{ name: 'dba', groups: ['g'], require_mfa: true, can_offboard: true, can_request: [{ targets: ['*'], logins: ['*'], max_duration: '1h', require_mfa: true, max_auth_age: '15m' }] }] }, 'f.yaml');
    expect(r).toMatchObject({ requireMfa: true, canOffboard: true, canRequest: [{ requireMfa: true, maxAuthAgeMs: 900_000 }] });
    expect(() => parseRoles({ roles: [{ name: 'x', can_request: [{ targets: [], logins: [], max_duration: '1h', require_mfa: 'yes' }] }] }, 'f.yaml')).toThrow(/require_mfa: must be true or false/);
    const c = parseConfig({
      listen: { http: '127.0.0.1:1' }, identity: { dev: true }, mfa: { acr_values: ['phr'] },
      targets: [{ name: 'db', protocol: 'postgres', address: '127.0.0.1:5432', database: 'x', logins: { a: { secret: 's' } }, require_mfa: true, max_auth_age: '10m', rotation: { every: '24h', after_session: true } }],
    }, '/x/pam.yaml');
    expect(c.mfa).toEqual({ acrValues: ['phr'] });
    expect(c.targets[0]).toMatchObject({ requireMfa: true, maxAuthAgeMs: 600_000, rotation: { everyMs: 86_400_000, afterSession: true } });
  });

  it.each([
    [{ rotation: { every: '10s' } }, /rotation\.every: must be at least 1m/],
    [{ rotation: { login: 'nobody' } }, /rotation\.login: "nobody" is not one of this target's logins/],
    [{ rotation: { authorized_keys: "/x/'; rm -rf /" } }, /authorized_keys: letters, digits/],
    [{ rotation: { evry: '1h' } }, /rotation\.evry: unknown key/],
    [{ require_mfa: 'yes' }, /require_mfa: must be true or false/],
    [{ max_auth_age: 'soon' }, /max_auth_age: "soon" is not a duration/],
  ])('refuses a bad target lifecycle key %#', (extra, why) => {
    const doc = { listen: { http: '127.0.0.1:1' }, identity: { dev: true }, targets: [{ name: 'w', protocol: 'ssh', address: '127.0.0.1:22', host_key: 'ssh-ed25519 AAAA', logins: { root: { secret: 's' } }, ...extra }] };
    expect(() => parseConfig(doc, '/x/pam.yaml')).toThrow(why);
  });

  it.each([
    [{ notify: [{ url: 'ftp://x', events: ['request.created'] }] }, /notify\[0\]\.url: must be an http\(s\) URL/],
    [{ notify: [{ url: 'https://x', events: ['request.made'] }] }, /notify\[0\]\.events: must be a list of: request\.created/],
    [{ scim: {} }, /scim\.token_file: is required/],
    [{ offboarding: { rotate_used_within: 'a month' } }, /offboarding\.rotate_used_within/],
  ])('refuses a bad top-level lifecycle key %#', (extra, why) => {
    expect(() => parseConfig({ listen: { http: '127.0.0.1:1' }, identity: { dev: true }, ...extra }, '/x/pam.yaml')).toThrow(why);
  });
});
