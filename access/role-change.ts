/**
 * Who may publish a change to roles (issue 12). Roles, approvers and capabilities live in the
 * same policy files as command rules, so a publish is checked on what it does, not on which
 * file it touches:
 *
 * - Nothing about roles changes (same roles, same fields): `can_edit_policies` is enough.
 * - Roles change (added, removed, groups, can_request, can_approve, any can_* flag): the
 *   publisher also needs `can_edit_roles`.
 * - And nobody widens their own capabilities alone: a change that would give the publisher a
 *   capability, an approver right or a request scope they do not hold now is refused even with
 *   `can_edit_roles`. Another person with `can_edit_roles` must publish it (that is the second
 *   pair of eyes). Narrowing one's own capabilities is allowed.
 *
 * Pure: the caller passes the roles before and after, and the publisher's identity.
 */
import type { Identity } from './identity.types.js';
import { capabilitiesOf } from './capabilities.js';
import { globMatch, rolesOf, type RequestScope, type Role } from '../policies/roles.js';

export type RoleChangeVerdict =
  | { allowed: true; rolesChanged: boolean }
  | { allowed: false; rolesChanged: true; reason: string };

const canonical = (roles: Role[]) => JSON.stringify(
  [...roles].sort((a, b) => a.name.localeCompare(b.name)).map((r) => ({
    ...r,
    groups: [...r.groups].sort(),
    canApprove: [...r.canApprove].sort(),
    // The step-up of a scope is part of the role: dropping require_mfa is a role change.
    canRequest: r.canRequest.map((s) => ({ targets: [...s.targets].sort(), logins: [...s.logins].sort(), maxDurationMs: s.maxDurationMs, requireMfa: s.requireMfa ?? false, maxAuthAgeMs: s.maxAuthAgeMs ?? null })),
  })),
);

/**
 * A pattern is within a held one when equal, when the held one is "*", or when it names one
 * thing (no wildcard) that the held pattern matches. Anything else counts as new: when in
 * doubt, a change is a widening.
 */
const within = (p: string, held: string[]) => held.some((h) => h === p || h === '*' || (!/[*?]/.test(p) && globMatch(h, p)));

/** True when `scope` is within one of `held` (its targets and logins, no longer duration). */
function covered(scope: RequestScope, held: RequestScope[]): boolean {
  return held.some((h) => scope.targets.every((t) => within(t, h.targets)) && scope.logins.every((l) => within(l, h.logins))
    && scope.maxDurationMs <= h.maxDurationMs && !looserAuth(h, scope));
}

/** Does `next` ask less of a sign-in than `prev` (MFA dropped, or an older sign-in allowed)? */
function looserAuth(prev: { requireMfa?: boolean; maxAuthAgeMs?: number }, next: { requireMfa?: boolean; maxAuthAgeMs?: number }): boolean {
  if (prev.requireMfa && !next.requireMfa) return true;
  return prev.maxAuthAgeMs !== undefined && (next.maxAuthAgeMs === undefined || next.maxAuthAgeMs > prev.maxAuthAgeMs);
}

/** What `identity` would gain if `after` replaced `before`; empty when nothing. */
export function widening(identity: Pick<Identity, 'groups'>, before: Role[], after: Role[]): string[] {
  const was = capabilitiesOf(identity, before);
  const will = capabilitiesOf(identity, after);
  const gained: string[] = [];
  if (will.audit && !was.audit) gained.push('can_audit');
  if (will.editPolicies && !was.editPolicies) gained.push('can_edit_policies');
  if (will.editRoles && !was.editRoles) gained.push('can_edit_roles');
  const mineBefore = rolesOf(before, identity.groups);
  const mineAfter = rolesOf(after, identity.groups);
  if (mineAfter.some((r) => r.canOffboard) && !mineBefore.some((r) => r.canOffboard)) gained.push('can_offboard');
  for (const r of will.approvesFor) if (!was.approvesFor.includes(r)) gained.push(`can_approve ${r}`);
  for (const r of mineAfter) {
    const prev = mineBefore.find((p) => p.name === r.name);
    if (prev && looserAuth(prev, r)) gained.push(`weaker sign-in for role ${r.name}`);
  }
  const heldScopes = mineBefore.flatMap((r) => r.canRequest);
  for (const s of mineAfter.flatMap((r) => r.canRequest)) {
    if (!covered(s, heldScopes)) gained.push(`can_request ${s.logins.join(',')}@${s.targets.join(',')}`);
  }
  return gained;
}

/**
 * May `publisher` replace the roles `before` with `after`? `inForce` are the roles the proxy
 * enforces now: the publisher's own `can_edit_roles` is read from them, never from the change.
 */
export function checkRoleChange(publisher: Pick<Identity, 'groups'>, inForce: Role[], before: Role[], after: Role[]): RoleChangeVerdict {
  if (canonical(before) === canonical(after)) return { allowed: true, rolesChanged: false };
  if (!capabilitiesOf(publisher, inForce).editRoles) {
    return { allowed: false, rolesChanged: true, reason: 'this change defines or changes roles, approvers or capabilities: that needs a role with can_edit_roles' };
  }
  const gained = [...new Set([...widening(publisher, before, after), ...widening(publisher, inForce, after)])];
  if (gained.length > 0) {
    return { allowed: false, rolesChanged: true, reason: `this change would widen your own capabilities (${gained.join('; ')}); another person with can_edit_roles must publish it` };
  }
  return { allowed: true, rolesChanged: true };
}
