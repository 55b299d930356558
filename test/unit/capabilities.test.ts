import { describe, expect, it } from 'vitest';
import { parseRoles } from '../../policies/roles.js';
import { capabilitiesOf, mayApprove, mayAudit, mayEditPolicies, mayOversee, mayReadPolicies, mayRequest, refusalFor } from '../../access/capabilities.js';

const roles = parseRoles({
  roles: [
    { name: 'dba', groups: ['dba'], can_request: [{ targets: ['appdb', 'app-*'], logins: ['app_rw'], max_duration: '1h' }] },
    { name: 'dba-long', groups: ['dba-senior'], can_request: [{ targets: ['appdb'], logins: ['app_*'], max_duration: '4h' }] },
    { name: 'lead', groups: ['leads'], can_approve: ['dba'] },
    { name: 'auditor', groups: ['sec'], can_audit: true },
    { name: 'editor', groups: ['policy'], can_edit_policies: true },
  ],
}, 'roles.yaml');

const who = (subject: string, ...groups: string[]) => ({ subject, groups });

describe('capabilitiesOf', () => {
  it('derives each capability only from the role that grants it', () => {
    expect(capabilitiesOf(who('a', 'dba'), roles)).toEqual({ roles: ['dba'], audit: false, approve: false, editPolicies: false, editRoles: false, offboard: false, approvesFor: [] });
    expect(capabilitiesOf(who('b', 'leads'), roles)).toMatchObject({ approve: true, audit: false, approvesFor: ['dba'] });
    expect(capabilitiesOf(who('c', 'sec'), roles)).toMatchObject({ audit: true, approve: false, editPolicies: false });
    expect(capabilitiesOf(who('d', 'policy'), roles)).toMatchObject({ editPolicies: true, editRoles: false, audit: false });
    expect(capabilitiesOf(who('e', 'nobody'), roles)).toEqual({ roles: [], audit: false, approve: false, editPolicies: false, editRoles: false, offboard: false, approvesFor: [] });
  });

  it('unites several roles', () => {
    const caps = capabilitiesOf(who('f', 'leads', 'sec', 'policy'), roles);
    expect(caps.roles).toEqual(['lead', 'auditor', 'editor']);
    expect([mayAudit(caps), mayEditPolicies(caps), mayReadPolicies(caps), mayOversee(caps)]).toEqual([true, true, true, true]);
  });

  it('reads policies with either can_audit or can_edit_policies, and oversees grants with can_audit or can_approve', () => {
    const c = (g: string) => capabilitiesOf(who('x', g), roles);
    expect(['dba', 'leads', 'sec', 'policy'].map((g) => mayReadPolicies(c(g)))).toEqual([false, false, true, true]);
    expect(['dba', 'leads', 'sec', 'policy'].map((g) => mayOversee(c(g)))).toEqual([false, true, true, false]);
  });
});

describe('mayApprove', () => {
  const lead = who('lead-1', 'leads');
  const caps = capabilitiesOf(lead, roles);
  it('needs can_approve for one of the asker\'s roles', () => {
    expect(mayApprove(lead, caps, { subject: 'someone', roles: ['dba'] })).toBe('yes');
    expect(mayApprove(lead, caps, { subject: 'someone', roles: ['dba-long'] })).toBe('no-role');
    expect(mayApprove(lead, caps, { subject: 'someone', roles: [] })).toBe('no-role');
  });
  it('never lets anyone decide their own item, whatever their roles', () => {
    expect(mayApprove(lead, caps, { subject: 'lead-1', roles: ['dba'] })).toBe('own');
    const all = capabilitiesOf(who('lead-1', 'leads', 'sec', 'policy'), roles);
    expect(mayApprove({ subject: 'lead-1' }, all, { subject: 'lead-1', roles: ['dba'] })).toBe('own');
  });
});

describe('mayRequest', () => {
  it('names the covering roles and the longest duration among their matching scopes', () => {
    expect(mayRequest(who('a', 'dba'), roles, 'appdb', 'app_rw')).toEqual({ roles: ['dba'], maxDurationMs: 3_600_000 });
    expect(mayRequest(who('a', 'dba', 'dba-senior'), roles, 'appdb', 'app_rw')).toEqual({ roles: ['dba', 'dba-long'], maxDurationMs: 4 * 3_600_000 });
    // dba-long covers appdb only, so app-eu falls back to dba's 1h.
    expect(mayRequest(who('a', 'dba', 'dba-senior'), roles, 'app-eu', 'app_rw')).toEqual({ roles: ['dba'], maxDurationMs: 3_600_000 });
  });
  it('refuses a target or login no scope matches', () => {
    expect(mayRequest(who('a', 'dba'), roles, 'otherdb', 'app_rw')).toBeUndefined();
    expect(mayRequest(who('a', 'dba'), roles, 'appdb', 'postgres')).toBeUndefined();
    expect(mayRequest(who('a', 'leads', 'sec'), roles, 'appdb', 'app_rw')).toBeUndefined();
  });
});

describe('refusalFor', () => {
  it('says which role key is missing, and nothing when granted', () => {
    const dba = capabilitiesOf(who('a', 'dba'), roles);
    expect(refusalFor(dba, 'audit')).toBe('this needs a role with can_audit');
    expect(refusalFor(dba, 'editPolicies')).toBe('this needs a role with can_edit_policies');
    expect(refusalFor(dba, 'readPolicies')).toBe('this needs a role with can_edit_policies or can_audit');
    const sec = capabilitiesOf(who('c', 'sec'), roles);
    expect(refusalFor(sec, 'audit')).toBeUndefined();
    expect(refusalFor(sec, 'readPolicies')).toBeUndefined();
    expect(refusalFor(sec, 'editPolicies')).toBe('this needs a role with can_edit_policies');
  });
});
