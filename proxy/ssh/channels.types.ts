/** Shapes shared by the session channel handler (channels.ts) and its relay (channel-relay.ts). */

import type ssh2 from 'ssh2';
import type { SshRecorder } from '../../recorder/ssh-recorder.js';
import type { AuditEvent } from '../../recorder/audit.types.js';
import type { PolicySubject } from '../../policies/policy.types.js';
import type { PolicyEngine } from '../../policies/engine.types.js';
import type { CommandPolicy } from './command-policy.js';
import type { OnEnter } from './enter-gate.js';
import type { ContentSink } from './file-content.js';

type Client = ssh2.Client;

/** What a session channel needs from its connection. */
export interface ChannelContext {
  upstream: Client;
  recording: SshRecorder;
  envAllow: string[];
  subject: PolicySubject;
  policy?: PolicyEngine;
  /** Command policy for exec requests (deny, alert, review holds); absent = commands run unchecked. */
  commands?: CommandPolicy;
  /** Interactive line check at each Enter of a pty session (enter-gate.ts); absent = no line checks. */
  onEnter?: OnEnter;
  /** Agent and X11 forwarding (session-forward.ts); absent = both refused. */
  forwards?: SessionForwarding;
  /** Set when the target keeps transferred files' contents (`recording: { transfers: content }`). */
  transferContent?: () => ContentSink;
  audit(event: AuditEvent): void;
  track(channel: Terminable): () => void;
  /** Counts relayed session-channel bytes (metrics); absent = not counted. */
  countBytes?(direction: 'client_to_target' | 'target_to_client', n: number): void;
}

/** A channel the connection can end from its side (kill, revocation, expiry). */
export interface Terminable {
  terminate(reason: string): void;
  /** A line for the user on the channel's stderr, the session going on (shutdown warning). */
  notice?(message: string): void;
}

/** How a relay treats the bytes it pumps: recorded terminal (optionally line-gated), raw, counted transfer, or audited SFTP. */
export type RelayMode =
  | { kind: 'terminal'; gate: boolean }
  /** gate: each stdin line is judged before it is written upstream (a shell without a pty, stdin-gate.ts). */
  | { kind: 'raw'; gate: boolean; /** The exec command (an `rsync --server` one gets per-file records). */ exec?: string }
  | { kind: 'transfer'; label: string; scp?: { direction: 'upload' | 'download'; path: string; dir: boolean } }
  | { kind: 'sftp' };

export type X11Request = { single: boolean; screen: number; protocol: string; cookie: string };

/** What a session channel asks for upstream, once allowed. */
export interface ForwardOptions {
  agentForward?: boolean;
  x11?: X11Request;
}

/** Agent and X11 forwarding of one connection, as the session channel handler uses it (session-forward.ts). */
export interface SessionForwarding {
  /** `auth-agent-req@openssh.com` on a client session: true = accept it and ask upstream too. */
  allowAgent(): boolean;
  /** `x11-req` on a client session: the upstream request to make, or undefined (refused). */
  allowX11(info: ssh2.X11Info): X11Request | undefined;
  /** Opens the upstream session with the allowed forwardings (retrying without one the target refuses). */
  start<T>(fwd: ForwardOptions, open: (fwd: ForwardOptions) => (cb: (err: Error | undefined, up: T) => void) => void, cb: (err: Error | undefined, up: T) => void): void;
}
