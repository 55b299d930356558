/**
 * Every audit event the proxy writes, as one discriminated union on `type`, and the builders the
 * call sites use. One field name per meaning, across all events:
 *
 * | field | meaning |
 * |---|---|
 * | `actor`, `sub` | who did it: display name (identity.user) and IAM subject; absent for the proxy's own events |
 * | `user` | whose grant, session, hold or recording it is, when that is not the actor |
 * | `protocol`, `target`, `login` | `ssh` or `postgres`; the configured target name; the login on it. For Postgres the client names the target in its `database` startup parameter; the upstream database itself is `database` |
 * | `client`, `origin` | the client's address; the far end of a forwarded connection |
 * | `request`, `grant`, `hold`, `session`, `recording` | ids of those objects |
 * | `why` | why the proxy refused or failed something, as the person was told (exceptions kept because readers depend on them: `token.rejected` and `connection.refused` keep `reason`, the key the rejection limiter counts by; `recording.failed` and `recording.gap` keep `error`, the write error; the `secret.rotate*` family keeps `why` for what started a rotation; `config.refused`, `evidence.witness_failed` and `discover.failed` keep `error`) |
 * | `reason` | what a person wrote to justify an action (request, approve, deny, revoke, kill), or why a session ended |
 * | `rule` | the policy rule that decided (`default_action` when none did) |
 * | `via` | the path the action came by (`token`/`dev`/`oidc`, `http`, `cli`, `exec`/`shell`) |
 *
 * Entries already on disk are read back as they were written (`AuditEntry` in audit.types.ts is
 * loose on purpose): the hash chain covers the exact bytes, so old entries are never rewritten.
 */

/** Who acted: the two names every event by a person carries. */
export interface Actor {
  user: string;
  subject: string;
}

/** Context fields any event may carry; the SSH and Postgres sessions add them to their events. */
interface Context {
  actor?: string;
  sub?: string;
  protocol?: 'ssh' | 'postgres';
  target?: string;
  login?: string;
  recording?: string;
  client?: string;
  user?: string;
}

/** One event per type literal (distributes over a union of types, so each type is its own member). */
type Ev<T extends string, F = object> = T extends string ? Context & { type: T } & F : never;

// ---- the proxy itself ----
export type ConfigLoaded = Ev<'config.loaded', { file: string; targets: string[]; roles: string[] }>;
export type PolicyLoaded = Ev<'policy.loaded', { roles: string[] }>;
/** A rule or role file was refused; the previous ones stay in force. */
export type PolicyRefused = Ev<'policy.refused', { why: string }>;
/** SIGHUP: the config file re-read (or refused, the running config kept). */
export type ConfigReloaded = Ev<'config.reloaded', { file: string; changed: string[]; needs_restart: string[]; targets: string[] }>;
/** Keeps `error` (the loader's message; the signals suite reads it). */
export type ConfigRefused = Ev<'config.refused', { file: string; error: string }>;
/** SIGTERM: graceful stop begins, and its outcome. */
export type ProxyStopping = Ev<'proxy.stopping', { signal: string; live_sessions: number; grace_ms: number }>;
export type ProxyStopped = Ev<'proxy.stopped', { signal: string; sessions_ended: number; recordings_sealed: boolean }>;
/** A witness did not take a checkpoint of the transparency log. */
export type WitnessFailed = Ev<'evidence.witness_failed', { witness: string; error: string }>;

// ---- access: requests, grants, sessions ----
export type RequestMade = Ev<'request', { request: string; target: string; login: string; duration: string; reason: string }>;
export type RequestRefused = Ev<'request.refused', { target: string; login: string; why: string; detail?: string }>;
/** `duration`: what the approver granted when shorter than asked (`asked`). */
export type Decision = Ev<'approve' | 'deny', { request: string; reason?: string; duration?: string; asked?: string }>;
export type DecisionRefused = Ev<'approve.refused' | 'deny.refused', { request: string; why: string }>;
export type GrantMade = Ev<'grant', { grant: string; request: string; user: string; target: string; login: string; expires: string }>;
export type Revoke = Ev<'revoke', { grant: string; user: string; target: string; login: string; reason?: string }>;
export type RevokeRefused = Ev<'revoke.refused', { grant: string; why: string }>;
/**
 * `code` names the kind (`host-key-mismatch` with the key it `presented`, `login-timeout`,
 * `unavailable`); target and login are absent when the client never named them (login timeout).
 */
export type SessionRefused = Ev<'session.refused', { target?: string; login?: string; why: string; grant?: string; code?: string; presented?: string }>;
export type SessionStart = Ev<'session.start', { target: string; login: string; grant: string; recording: string; database?: string }>;
/** `recording_gap`: a best-effort recording lost data from `from` on. */
export type SessionEnd = Ev<'session.end', { reason?: string; sha256?: string; recording_gap?: { from: string; error?: string } }>;
/** The proxy could not open a granted session: `code` says which step (`upstream`, `recording`). */
export type SessionFailed = Ev<'session.failed', { target: string; login: string; why: string; grant?: string; code?: 'upstream' | 'recording' }>;
/** A Postgres session changed a parameter the proxy pins (client_encoding, standard_conforming_strings) and was ended. */
export type ParsePinBroken = Ev<'postgres.parse-pin.broken', { session?: string; why: string }>;
export type SessionKill = Ev<'session.kill', { session: string; user: string; target: string; reason?: string }>;

// ---- offboarding (a person leaves: grants, requests, sessions, keys, credentials) ----
export type OffboardRefused = Ev<'offboard.refused', { why: string }>;
export type Offboard = Ev<'offboard', {
  user: string; subjects: string[]; emails: string[]; reason: string; grantsRevoked: string[]; requestsDenied: string[];
  sessionsEnded: string[]; keyBindingsRemoved: string[]; credentialsRotated: Array<{ secret: string; ok: boolean; error?: string }>;
}>;
export type OffboardReinstate = Ev<'offboard.reinstate', { user: string; subjects: string[] }>;

// ---- recordings and evidence ----
/** Strict mode: the recording failed and the session was ended. */
export type RecordingFailed = Ev<'recording.failed', { recording: string; mode: string; error: string }>;
/** Best-effort mode: the recording lost data from `from` on; the session went on. */
export type RecordingGap = Ev<'recording.gap', { recording: string; mode: string; error: string; from: string }>;
export type EvidenceExport = Ev<'evidence.export', { recording: string; checkpoint_size: number; key_id: string }>;
export type EvidenceExportRefused = Ev<'evidence.export_refused', { recording?: string; why: string }>;
/** The audit export spool for a sink filled up (new events dropped), and later had room again. */
export type AuditExportOverflow = Ev<'audit_export.overflow', { sink: string; spool_max_bytes: number; first_dropped_seq: number }>;
export type AuditExportResumed = Ev<'audit_export.resumed', { sink: string; dropped: number; first_dropped_seq?: number }>;

// ---- SCIM provisioning (actor `scim`) ----
export type ScimUserCreate = Ev<'scim.user.create', { user: string; id: string; active: boolean }>;
export type ScimUserDelete = Ev<'scim.user.delete', { user: string; id: string }>;
export type ScimRefused = Ev<'scim.refused', { why: string }>;

// ---- discovery (`pam discover`: privileged accounts on a target) ----
export type Discover = Ev<'discover', { target: string; via: string; accounts: number; unmanaged: string[] }>;
export type DiscoverFailed = Ev<'discover.failed', { target: string; via: string; error: string }>;

// ---- review holds ----
export type HoldMade = Ev<'policy.hold', { hold: string; protocol: 'ssh' | 'postgres'; target: string; login: string; rule?: string; text: string }>;
export type HoldRefused = Ev<'policy.hold.refused', { hold: string; why: string }>;
export type HoldDecision = Ev<'policy.hold.approve' | 'policy.hold.deny', { hold: string; user: string; target: string; reason?: string }>;

// ---- policy verdicts inside sessions ----
/** A non-allow verdict on a command, channel or statement. */
export type PolicyVerdict = Ev<'policy.alert' | 'policy.deny' | 'policy.review', {
  kind?: 'command' | 'channel';
  via?: 'exec' | 'shell';
  rule?: string;
  command?: string;
  sql?: string;
  channel?: string;
  destination?: string;
  hold?: string;
  /** The verdict that led to the deny (`review` when a hold ended without approval). */
  action?: 'deny' | 'review';
  /** How a hold ended. */
  status?: string;
  message?: string;
  why?: string;
}>;

// ---- SSH channels (the session adds actor, target, login, recording) ----
export type SshShell = Ev<'ssh.shell', { pty: boolean }>;
/** A pty session switched screens; an alternate screen's `owner` (a trusted full-screen program) means lines go unjudged. */
export type SshScreen = Ev<'ssh.screen', { mode: string; owner?: string; judged: boolean }>;
/** A file transfer protocol on a channel could not be followed (per-file records stop; the raw recording is whole). */
export type SshTransferUndecoded = Ev<'ssh.transfer.undecoded', { via: 'rsync' | 'scp' | 'sftp'; why: string }>;
export type SshExec = Ev<'ssh.exec' | 'ssh.exec.denied', { command: string; why?: string; rule?: string }>;
export type SshSubsystem = Ev<'ssh.subsystem' | 'ssh.subsystem.denied', { name: string; why?: string }>;
export type SshCommandDenied = Ev<'ssh.command.denied', { command: string; why?: string; rule?: string; via?: string }>;
export interface ForwardFields {
  channel?: string;
  destination?: string;
  /** The global request that opened it (`tcpip-forward` for -R). */
  request?: string;
  rule?: string;
  /** The form of the destination (or -R bind address) a rule refused it by, when not as asked. */
  normalised?: string;
  /** What the destination was asked as, when it was judged by another (canonical) form. */
  asked?: string;
  /** An -R bind address as the target was asked for it, when not as the client asked. */
  upstream?: string;
}
export type SshChannelRefused = Ev<'ssh.channel.refused', ForwardFields & { why: string }>;
export type SshForward = Ev<'ssh.forward', ForwardFields & { port?: number; screen?: number; single?: boolean }>;
export type SshForwardFailed = Ev<'ssh.forward.failed', ForwardFields & { why: string }>;
export type SshForwardConnection = Ev<'ssh.forward.connection', ForwardFields & { origin?: string }>;

// ---- keys bound with `pam login --key` ----
export type SshKeyBind = Ev<'ssh-key.bind', { fingerprint: string; expires: string }>;
export type SshKeyRefused = Ev<'ssh-key.refused', { fingerprint: string; why: string }>;
export type SshKeyTakeoverRefused = Ev<'ssh-key.takeover-refused', { fingerprint: string; owner: string; owner_sub: string }>;

// ---- the viewer and the API ----
export type UiSignin = Ev<'ui.signin', { via: 'token' | 'dev' | 'oidc' }>;
export type UiSigninRefused = Ev<'ui.signin-refused', { via: 'dev' | 'oidc'; why: string }>;
/** `reason` is TokenRejected.reason from the verifier (kept: the rejection limiter counts by it). */
export type TokenRejected = Ev<'token.rejected', { via: string; reason: string }>;
/**
 * A connection dropped before login by a limit (max_unauthenticated_per_source, or the pre-auth
 * byte cap: `bytes` read against `limit`); `reason` as in token.rejected.
 */
export type ConnectionRefused = Ev<'connection.refused', { via: string; reason: string; bytes?: number; limit?: number }>;
/** Refusals past the per-source burst, counted per reason (access/rejection-audit.ts). */
export type TokenRejectedSuppressed = Ev<'token.rejected.suppressed', { via: string; client: string; count: number; reasons: Record<string, number>; since: string; until: string }>;
export type PolicyPublish = Ev<'policy.publish', { file: string; version: string; sha256: string; previous: string | null; message?: string }>;
export type PolicyPublishRefused = Ev<'policy.publish-refused', { file: string; why: string }>;
export type RecordingOpen = Ev<'recording.open', { recording: string; user: string; target: string; how: string }>;
export type RecordingSearch = Ev<'recording.search', { query: string; hits: number; filters?: Record<string, string> }>;
export type RecordingParams = Ev<'recording.params', { recording: string; line: number }>;
/** `via` names the path when it is not the export route (the evidence bundle's data file). */
export type RecordingExport = Ev<'recording.export', { recording: string; format: string; stream?: string; via?: string }>;
/** A recording's seal (SHA-256 of its bytes and of its catalog entry), so the signed log covers it. */
export type RecordingSealed = Ev<'recording.sealed', { recording: string; format: string; sha256?: string; bytes?: number; catalog_sha256: string; as_found_at_restart?: boolean }>;

// ---- the CLI on the proxy host ----
export type SecretChange = Ev<'secret.set' | 'secret.remove', { via: 'cli'; name: string }>;
/**
 * A vaulted credential rotated at its target (`via`: the login that changed it). The rotation
 * family keeps `why` for what started it and `error` for a failure (the rotation suite reads them).
 */
export type SecretRotate = Ev<'secret.rotate', { name: string; target: string; login: string; via: string; why: string }>;
export type SecretRotateFailed = Ev<'secret.rotate.failed', { name: string; why: string; error: string }>;
/** An unfinished rotation was found at the next one and the value the target accepts was kept. */
export type SecretRotateRecovered = Ev<'secret.rotate.recovered', { name: string; target: string; login: string; why: string }>;

export type AuditEvent =
  | ConfigLoaded | PolicyLoaded | PolicyRefused | ConfigReloaded | ConfigRefused | ProxyStopping | ProxyStopped | WitnessFailed
  | RequestMade | RequestRefused | Decision | DecisionRefused | GrantMade | Revoke | RevokeRefused
  | SessionRefused | SessionStart | SessionEnd | SessionFailed | SessionKill | ParsePinBroken
  | HoldMade | HoldRefused | HoldDecision
  | PolicyVerdict
  | SshShell | SshScreen | SshTransferUndecoded | SshExec | SshSubsystem | SshCommandDenied | SshChannelRefused | SshForward | SshForwardFailed | SshForwardConnection
  | SshKeyBind | SshKeyRefused | SshKeyTakeoverRefused
  | UiSignin | UiSigninRefused | TokenRejected | ConnectionRefused | TokenRejectedSuppressed | PolicyPublish | PolicyPublishRefused | RecordingOpen | RecordingSearch | RecordingParams | RecordingExport | RecordingSealed
  | SecretChange | SecretRotate | SecretRotateFailed | SecretRotateRecovered
  | ScimUserCreate | ScimUserDelete | ScimRefused
  | Discover | DiscoverFailed
  | OffboardRefused | Offboard | OffboardReinstate
  | RecordingFailed | RecordingGap | EvidenceExport | EvidenceExportRefused | AuditExportOverflow | AuditExportResumed;

export type AuditEventType = AuditEvent['type'];
export type AuditEventOf<T extends AuditEventType> = Extract<AuditEvent, { type: T }>;
/** An event's own fields: what a call site passes besides the type and the actor. */
export type FieldsOf<T extends AuditEventType> = Omit<AuditEventOf<T>, 'type' | 'actor' | 'sub'>;

/** `actor` and `sub` of a person. */
export function byActor(who: Actor): { actor: string; sub: string } {
  return { actor: who.user, sub: who.subject };
}

/** An event done by a person: `auditBy(identity, 'revoke', { grant, … })`. */
export function auditBy<T extends AuditEventType>(who: Actor, type: T, fields: FieldsOf<T>): AuditEventOf<T> {
  return { type, ...byActor(who), ...fields } as AuditEventOf<T>;
}

/**
 * An event of the proxy itself, one whose actor is not verified (a rejected token), or one by a
 * local operator known only by OS user name (`pam secret`, actor without sub).
 */
export function auditEvent<T extends AuditEventType>(type: T, fields: Omit<AuditEventOf<T>, 'type'>): AuditEventOf<T> {
  return { type, ...fields } as AuditEventOf<T>;
}
