/** Verdicts, strongest first: deny > review > alert > allow. */
export type Action = 'allow' | 'deny' | 'review' | 'alert';

export interface Verdict {
  action: Action;
  /** Name of the deciding rule; absent when the target's default_action decided. */
  rule?: string;
  message?: string;
  /** For shell lines: the simple commands as the evaluator saw them (after de-quoting). */
  commands?: string[][];
}

/** Who asks, where. Plain values so the evaluator stays pure. */
export interface PolicySubject {
  user: string;
  groups: string[];
  roles: string[];
  target: string;
  login: string;
}

export type PolicyRequest =
  /** `unechoed`: the line was typed with echo off (read from the keys): `match: { unechoed: true }` rules apply to it. */
  | (PolicySubject & { protocol: 'ssh'; kind: 'command'; command: string; unechoed?: boolean })
  | (PolicySubject & { protocol: 'ssh'; kind: 'channel'; channel: 'sftp' | 'scp' | 'port-forward' | 'agent-forward' | 'x11' | 'subsystem'; destination?: string })
  | (PolicySubject & { protocol: 'postgres'; kind: 'sql'; sql: string });

/** What a request asks about, without who asks: a shell command, a channel, an SQL text. */
export type PolicyIntent = PolicyRequest extends infer R ? (R extends PolicyRequest ? Omit<R, keyof PolicySubject> : never) : never;
