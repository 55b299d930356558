import { describe, expect, it } from 'vitest';
import { checkRoleChange, widening } from '../../access/role-change.js';
import type { Role } from '../../policies/roles.js';

const role = (name: string, groups: string[], extra: Partial<Role> = {}): Role => ({
  name, groups, canRequest: [], canApprove: [], canAudit: false, canEditPolicies: false, canEditRoles: false, ...extra,
});
const me = { groups: ['ops'] };
const hour = 3600_000;

describe('role changes', () => {
  const before = [role('ops', ['ops'], { canEditPolicies: true, canEditRoles: true, canRequest: [{ targets: ['web*'], logins: ['root'], maxDurationMs: hour }] }), role('dba', ['dba'])];

  it('lets an unchanged set of roles through (rules-only publish), in any order', () => {
    expect(checkRoleChange({ groups: ['nobody'] }, before, before, [...before].reverse())).toEqual({ allowed: true, rolesChanged: false });
  });

  it('needs can_edit_roles from the roles in force, not from the change', () => {
    const editor = [role('ops', ['ops'], { canEditPolicies: true })];
    const after = [role('ops', ['ops'], { canEditPolicies: true, canEditRoles: true })];
    const v = checkRoleChange(me, editor, editor, after);
    expect(v.allowed).toBe(false);
  });

  it('names every widening of the publisher and none of a narrowing', () => {
    const wider = [role('ops', ['ops'], { ...before[0], canAudit: true, canApprove: ['dba'], canRequest: [{ targets: ['web*'], logins: ['root'], maxDurationMs: 2 * hour }] }), role('dba', ['dba'])];
    expect(widening(me, before, wider)).toEqual(['can_audit', 'can_approve dba', 'can_request root@web*']);
    const joinsGroupRole = [...before.slice(0, 1), role('dba', ['dba', 'ops'], { canAudit: true })];
    expect(widening(me, before, joinsGroupRole)).toEqual(['can_audit']);
    const narrower = [role('ops', ['ops'], { ...before[0], canRequest: [{ targets: ['web1'], logins: ['root'], maxDurationMs: hour / 2 }] }), role('dba', ['dba'])];
    expect(widening(me, before, narrower)).toEqual([]);
    expect(checkRoleChange(me, before, before, narrower)).toEqual({ allowed: true, rolesChanged: true });
    expect(checkRoleChange(me, before, before, wider).allowed).toBe(false);
  });

  it('lets a role editor change other people\'s roles', () => {
    const after = [before[0]!, role('dba', ['dba'], { canAudit: true })];
    expect(checkRoleChange(me, before, before, after)).toEqual({ allowed: true, rolesChanged: true });
  });
});

describe('role changes: sign-in strength and offboarding', () => {
  it('counts dropping MFA or lengthening max_auth_age on an own role, and can_offboard, as widening', () => {
    const strict = [role('ops', ['ops'], { canEditRoles: true, requireMfa: true, maxAuthAgeMs: 900_000 })];
    expect(widening(me, strict, [role('ops', ['ops'], { canEditRoles: true, maxAuthAgeMs: 900_000 })])).toEqual(['weaker sign-in for role ops']);
    expect(widening(me, strict, [role('ops', ['ops'], { canEditRoles: true, requireMfa: true })])).toEqual(['weaker sign-in for role ops']);
    expect(widening(me, strict, [role('ops', ['ops'], { canEditRoles: true, requireMfa: true, maxAuthAgeMs: 900_000, canOffboard: true })])).toEqual(['can_offboard']);
  });

  it('counts dropping require_mfa from a scope as a role change (can_edit_policies alone may not do it)', () => {
    const strict = [role('ops', ['ops'], { canEditPolicies: true }), role('dba', ['dba'], { canRequest: [{ targets: ['db'], logins: ['*'], maxDurationMs: hour, requireMfa: true }] })];
    const lax = [strict[0]!, role('dba', ['dba'], { canRequest: [{ targets: ['db'], logins: ['*'], maxDurationMs: hour }] })];
    const v = checkRoleChange(me, strict, strict, lax);
    expect(v).toMatchObject({ allowed: false, rolesChanged: true });
  });
});
