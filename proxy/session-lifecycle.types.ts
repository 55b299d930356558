import type { AccessDenied } from '../access/access.types.js';
import type { Identity } from '../access/identity.types.js';
import type { RecordingMeta } from '../recorder/recording.types.js';

export type BrokerProtocol = 'ssh' | 'postgres';

/** What a broker read off the wire before asking for a session. */
export interface OpenRequest {
  protocol: BrokerProtocol;
  /** The target as the client named it (SSH `LOGIN@TARGET`, the Postgres `database` parameter). */
  target: string;
  login: string;
  /** Client address `ip:port`, for the audit log and the live-session list. */
  client: string;
  /**
   * An IAM token to verify, or an identity the broker already proved (an SSH key bound with
   * `pam login --key`, whose signature the broker checked).
   */
  credential: { kind: 'token'; token: string } | { kind: 'identity'; identity: Identity };
  /** Aborted when the client goes away: the open stops at the next step (refusal code `gone`). */
  signal?: AbortSignal;
}

/**
 * Why a session was not opened. Each broker maps every code to what its protocol can say
 * (proxy/ssh/session.ts: retry prompt or final refusal; proxy/postgres/session-errors.ts: SQLSTATE).
 * A new refusing step adds a code here, and the type checker then asks both brokers to map it.
 */
export type RefusalCode =
  | 'token' //               the IAM token was rejected (the client may retry with a fresh one)
  | AccessDenied['code'] //  no grant, unknown target or login, locked
  | 'error' //               the grant check itself failed: refused, try again later
  | 'unavailable' //         the access store is unreachable (StoreUnavailable): try again (57P03)
  | 'login-timeout' //       login_timeout passed before the session opened (proxy/login-guard.ts)
  | 'credential' //          the vaulted credential is not available on this proxy
  | 'upstream' //            the target could not be reached or refused the vaulted login
  | 'host-key-mismatch' //   the target is not the pinned one
  | 'recording' //           the recording could not be opened, or its session.start not audited: the session may not run
  | 'gone'; //               the client left while the session was opening (nothing to tell)

/** A refusal from the lifecycle, already audited. `message` is safe to show the user. */
export class SessionRefused extends Error {
  constructor(readonly code: RefusalCode, message: string) {
    super(message);
    this.name = 'SessionRefused';
  }
}

/**
 * Thrown by a broker's connect step when the target must not be used (not merely unreachable):
 * audited as `session.refused` with `code` and `detail` rather than `session.failed`.
 */
export class TargetRefused extends Error {
  constructor(message: string, readonly code: 'host-key-mismatch', readonly detail: Record<string, string> = {}) {
    super(message);
    this.name = 'TargetRefused';
  }
}

/** The catalog fields every recording carries; the broker adds its format's own. */
export type RecordingStart = Required<Pick<RecordingMeta, 'user' | 'subject' | 'login' | 'target' | 'clientAddress' | 'grantId'>>;

/** A session's recording as the lifecycle needs it: opened by the broker, sealed here. */
export interface SessionRecording {
  readonly id: string;
  /** SHA-256 of the sealed data file, once `close` resolved (absent if the writer keeps it to the catalog). */
  readonly sha256?: string;
  /** Set by the lifecycle: a write failure ends the session (fail closed). */
  onError: ((err: Error) => void) | undefined;
  /** Writes the end, seals the data file and marks the catalog entry ended. */
  close(reason: string): Promise<void>;
}
