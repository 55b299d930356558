import type { Identity } from './identity.types.js';
import type { MfaRule, Target } from '../config/config.types.js';

export type RequestStatus = 'pending' | 'approved' | 'denied' | 'expired';

export interface AccessRequest {
  id: string;
  subject: string;
  user: string;
  /** The requester's email claim, so offboarding by email finds the request. */
  email?: string;
  /** Roles the requester held when asking; approvers are matched against these. */
  roles: string[];
  target: string;
  login: string;
  durationMs: number;
  /** Set when an approver granted less time than asked (`durationMs`). */
  approvedDurationMs?: number;
  reason: string;
  status: RequestStatus;
  createdAt: number;
  decidedBy?: string;
  decidedAt?: number;
  decisionReason?: string;
  grantId?: string;
  /** The step-up rule of the scope it was requested under; enforced again at every session open. */
  mfa?: MfaRule;
}

export interface Grant {
  id: string;
  requestId: string;
  subject: string;
  user: string;
  email?: string;
  target: string;
  login: string;
  approvedBy: string;
  startsAt: number;
  expiresAt: number;
  /** Copied from the request: the step-up every session with this grant needs. */
  mfa?: MfaRule;
}

declare const authorizedBrand: unique symbol;
/**
 * Proof that the grant check passed. Only AccessGate.authorize makes one, and opening an
 * upstream takes one, so no code path can skip the check.
 */
export interface Authorized {
  readonly [authorizedBrand]: true;
  readonly identity: Identity;
  readonly target: Target;
  readonly login: string;
  readonly grant: Grant;
}

/** Refusal to open a session; `message` is shown to the user (it says what to run). */
export class AccessDenied extends Error {
  constructor(message: string, public readonly code: 'no-grant' | 'unknown-target' | 'unknown-login' | 'locked' | 'mfa' | 'offboarded' = 'no-grant') {
    super(message);
    this.name = 'AccessDenied';
  }
}

/** What the brokers ask before opening any upstream. */
export interface AccessGate {
  /** Resolves to proof of an active grant or throws AccessDenied. Audits refusals. */
  authorize(identity: Identity, target: string, login: string, protocol: 'ssh' | 'postgres'): Promise<Authorized>;
  /**
   * Calls `onEnd` once when the grant stops being valid (expiry, revocation), with a one-line
   * reason. Returns an unsubscribe function.
   */
  watchGrant(grant: Grant, onEnd: (reason: string) => void): () => void;
}
