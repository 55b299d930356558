import { TargetRefused } from '../session-lifecycle.types.js';

/** Errors of the SSH broker. `message` is what the user may see; causes stay in logs. */
export class SshBrokerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SshBrokerError';
  }
}

/** The target could not be reached or refused the vaulted credential. */
export class UpstreamError extends SshBrokerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

/** The target presented a host key other than the pinned one: the session is refused (not "unreachable"). */
export class HostKeyMismatch extends TargetRefused {
  constructor(readonly target: string, readonly presented: string) {
    super(`host key of target "${target}" does not match the pinned key; session refused`, 'host-key-mismatch', { presented });
    this.name = 'HostKeyMismatch';
  }
}
