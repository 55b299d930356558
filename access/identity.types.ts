/** Who is behind a verified IAM token. Produced only by an IdentityVerifier; nothing else reads raw tokens. */
export interface Identity {
  /** `sub` claim: stable key for grants and requests. */
  subject: string;
  /** Display name: preferred_username, else email, else sub. */
  user: string;
  email?: string;
  groups: string[];
  /** MFA claims kept as issued. */
  amr?: string[];
  acr?: string;
  /** `auth_time`: when the person last signed in at the IdP, ms since epoch. */
  authTime?: number;
  /** `iat`: when this token was issued, ms since epoch. */
  issuedAt?: number;
  issuer: string;
  /** Token expiry, ms since epoch. */
  expiresAt: number;
}

/** Why a token was refused; `reason` is safe to log and show (never contains the token). */
export class TokenRejected extends Error {
  constructor(public readonly reason: string, options?: { cause?: unknown }) {
    super(`token rejected: ${reason}`, options);
    this.name = 'TokenRejected';
  }
}

/**
 * A valid token of a person whose access was removed (offboarding): final, unlike other
 * rejections a fresh token does not help, so brokers end the login instead of asking again.
 */
export class IdentityRevoked extends TokenRejected {
  constructor(reason: string) {
    super(reason);
    this.name = 'IdentityRevoked';
  }
}

export interface IdentityVerifier {
  /** Resolves to the identity or throws TokenRejected. Fails closed on any doubt. */
  verify(token: string): Promise<Identity>;
  /**
   * Resolves once the issuer's signing keys are loaded and fresh (fetching them if needed);
   * rejects naming why not. `/readyz` uses it. Absent: the keys are local (dev issuer).
   */
  ready?(): Promise<void>;
}
