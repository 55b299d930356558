/** Shapes shared by the session channel handler (channels.ts) and its relay (channel-relay.ts). */

import type ssh2 from 'ssh2';
import type { AsciicastWriter } from '../../recorder/asciicast-writer.js';
import type { AuditEvent } from '../../recorder/audit.types.js';
import type { PolicyEngine, PolicySubject } from '../../policies/policy.types.js';
import type { CommandPolicy } from './command-policy.js';
import type { OnEnter } from './enter-gate.js';
import type { SessionForwards } from './session-forward.js';

type Client = ssh2.Client;

/** What a session channel needs from its connection. */
export interface ChannelContext {
  upstream: Client;
  recording: AsciicastWriter;
  envAllow: string[];
  subject: PolicySubject;
  policy?: PolicyEngine;
  /** Command policy for exec requests (deny, alert, review holds); absent = commands run unchecked. */
  commands?: CommandPolicy;
  /** Interactive line check at each Enter of a pty session (enter-gate.ts); absent = no line checks. */
  onEnter?: OnEnter;
  /** Agent and X11 forwarding (session-forward.ts); absent = both refused. */
  forwards?: SessionForwards;
  audit(event: AuditEvent): void;
  track(channel: Terminable): () => void;
}

/** A channel the connection can end from its side (kill, revocation, expiry). */
export interface Terminable {
  terminate(reason: string): void;
}

/** How a relay treats the bytes it pumps: recorded terminal (optionally line-gated), raw, counted transfer, or audited SFTP. */
export type RelayMode =
  | { kind: 'terminal'; gate: boolean }
  | { kind: 'raw'; gate: false }
  | { kind: 'transfer'; label: string }
  | { kind: 'sftp' };
