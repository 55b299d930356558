import type { Identity } from './identity.types.js';
import { globMatch, rolesOf, type RequestScope, type Role } from '../policies/roles.js';

/**
 * What an identity may do beyond asking for access, derived once from the roles its groups
 * map to (the `can_*` keys of the role files). Every check in the API, the UI and the services
 * reads these; nothing else looks at `Role.can*` directly.
 */
export interface Capabilities {
  /** Names of the roles the identity holds. */
  roles: string[];
  /** can_audit: recordings, live sessions, the audit log, everybody's requests and holds. */
  audit: boolean;
  /** At least one can_approve entry. */
  approve: boolean;
  /** can_edit_policies: publish rule files. */
  editPolicies: boolean;
  /** can_edit_roles: publish files that define or change roles (access/role-change.ts). */
  editRoles: boolean;
  /** can_offboard: the security capability (`pam offboard`, `pam discover`). */
  offboard: boolean;
  /** Role names whose requests and held commands this identity may decide (can_approve). */
  approvesFor: string[];
}

export function capabilitiesOf(identity: Pick<Identity, 'groups'>, roles: Role[]): Capabilities {
  const mine = rolesOf(roles, identity.groups);
  return {
    roles: mine.map((r) => r.name),
    audit: mine.some((r) => r.canAudit),
    approve: mine.some((r) => r.canApprove.length > 0),
    editPolicies: mine.some((r) => r.canEditPolicies),
    editRoles: mine.some((r) => r.canEditRoles),
    offboard: mine.some((r) => r.canOffboard === true),
    approvesFor: [...new Set(mine.flatMap((r) => r.canApprove))],
  };
}

/**
 * The roles that may request `login@target` (can_request) and the longest duration any of
 * their matching scopes allows; undefined when none may.
 */
export function mayRequest(identity: Pick<Identity, 'groups'>, roles: Role[], target: string, login: string): { roles: string[]; maxDurationMs: number } | undefined {
  const found = requestScopes(identity, roles, target, login);
  if (found.length === 0) return undefined;
  return { roles: [...new Set(found.map((f) => f.role.name))], maxDurationMs: Math.max(...found.map((f) => f.scope.maxDurationMs)) };
}

/** Every (role, can_request entry) of the identity that covers `login@target`. */
export function requestScopes(identity: Pick<Identity, 'groups'>, roles: Role[], target: string, login: string): { role: Role; scope: RequestScope }[] {
  return rolesOf(roles, identity.groups).flatMap((role) => role.canRequest
    .filter((s) => s.targets.some((p) => globMatch(p, target)) && s.logins.some((p) => globMatch(p, login)))
    .map((scope) => ({ role, scope })));
}

/** Something waiting for an approver: an access request or a held command. */
export interface Decidable {
  /** Who asked. */
  subject: string;
  /** The roles the asker held when asking; an approver needs can_approve for one of them. */
  roles: string[];
}

/** `yes`, or why not: nobody decides their own item; an approver needs a matching can_approve. */
export type ApproveCheck = 'yes' | 'own' | 'no-role';

export function mayApprove(identity: Pick<Identity, 'subject'>, caps: Capabilities, item: Decidable): ApproveCheck {
  if (identity.subject === item.subject) return 'own';
  return caps.approvesFor.some((name) => item.roles.includes(name)) ? 'yes' : 'no-role';
}

/** The identity's roles whose can_approve covers `item` (their require_mfa applies to the approver). */
export function approvingRoles(identity: Pick<Identity, 'groups'>, roles: Role[], item: Pick<Decidable, 'roles'>): Role[] {
  return rolesOf(roles, identity.groups).filter((r) => r.canApprove.some((name) => item.roles.includes(name)));
}

/** Recordings, live sessions, the audit log; every request and hold in the lists. */
export const mayAudit = (caps: Capabilities): boolean => caps.audit;
/** Publish rule files. */
export const mayEditPolicies = (caps: Capabilities): boolean => caps.editPolicies;
/** Read rule files and run the what-if tester. */
export const mayReadPolicies = (caps: Capabilities): boolean => caps.editPolicies || caps.audit;
/** See every active grant (approvers and auditors oversee them). */
export const mayOversee = (caps: Capabilities): boolean => caps.audit || caps.approve;

/** The approvers' inbox (pending items, their context, the decided history): approvers and auditors. */
export const mayUseInbox = (caps: Capabilities): boolean => caps.approve || caps.audit;
/**
 * The requester's context beside a pending item (their grants, recent sessions, the session's
 * recent commands): for whoever may decide it, and for auditors.
 */
export const mayViewContext = (identity: Pick<Identity, 'subject'>, caps: Capabilities, item: Decidable): boolean => mayAudit(caps) || mayApprove(identity, caps, item) === 'yes';

/** Offboard a person: approvers and the security capability. */
export const mayOffboard = (caps: Capabilities): boolean => caps.approve || caps.offboard;
/** List privileged accounts on a target: auditors and the security capability. */
export const mayDiscover = (caps: Capabilities): boolean => caps.audit || caps.offboard;

/** A capability an API route needs. */
export type Capability = 'audit' | 'editPolicies' | 'readPolicies' | 'offboard' | 'discover' | 'inbox';

const NEEDS: Record<Capability, { test: (c: Capabilities) => boolean; message: string }> = {
  audit: { test: mayAudit, message: 'this needs a role with can_audit' },
  editPolicies: { test: mayEditPolicies, message: 'this needs a role with can_edit_policies' },
  offboard: { test: mayOffboard, message: 'offboarding needs a role with can_approve or can_offboard' },
  discover: { test: mayDiscover, message: 'discovery needs a role with can_audit or can_offboard' },
  readPolicies: { test: mayReadPolicies, message: 'this needs a role with can_edit_policies or can_audit' },
  inbox: { test: mayUseInbox, message: 'the inbox needs a role with can_approve or can_audit' },
};

/** Undefined when `caps` grants `need`; otherwise the refusal to show (routes answer it with 403). */
export function refusalFor(caps: Capabilities, need: Capability): string | undefined {
  const n = NEEDS[need];
  return n.test(caps) ? undefined : n.message;
}
