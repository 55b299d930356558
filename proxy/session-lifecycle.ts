/**
 * The one session lifecycle both brokers run; the brokers keep only their protocol.
 *
 *   open    verify the token (IdentityVerifier) → authorize (AccessGate, which alone makes the
 *           `Authorized` proof) → reveal the credential (Vault, from that proof) → the broker's
 *           connect step → { auth, upstream }
 *   attach  the broker's recording → live-session registry (auditor kill) → grant watch (expiry,
 *           revocation) → audit `session.start`, written before the session is served → a LiveSession
 *   finish  registry and watch released → recording sealed (data file and catalog entry) →
 *           audit `session.end`
 *
 * Every refusal is audited once, with a reason and never the token, and thrown as a
 * `SessionRefused` whose code the broker translates (an SSH auth failure or disconnect, a
 * Postgres ErrorResponse with SQLSTATE). A step both brokers need (MFA step-up, a login
 * deadline (proxy/login-guard.ts), a store-outage refusal (`unavailable`), a shutdown notice) is written once, here: a new `handleX`
 * in `open` or `attach`, and a new RefusalCode if it refuses in a new way.
 * Read like warpgate's run() → run_authorization() → run_authorized().
 */
import type { AccessGate, Authorized } from '../access/access.types.js';
import { AccessDenied } from '../access/access.types.js';
import { IdentityRevoked, TokenRejected, type Identity, type IdentityVerifier } from '../access/identity.types.js';
import type { SessionRegistry } from '../access/live-sessions.js';
import type { Vault } from '../access/vault.types.js';
import { StoreUnavailable } from '../access/store.js';
import type { RejectionAudit } from '../access/rejection-audit.js';
import { sourceOf } from './login-guard.js';
import type { AuditEvent, AuditLog } from '../recorder/audit.types.js';
import { auditEvent, byActor, type Actor } from '../recorder/audit-events.js';
import {
  SessionRefused, TargetRefused, type BrokerProtocol, type OpenRequest, type RecordingStart, type SessionRecording,
} from './session-lifecycle.types.js';

export { SessionRefused, TargetRefused } from './session-lifecycle.types.js';
export type { OpenRequest, RecordingStart, RefusalCode, SessionRecording } from './session-lifecycle.types.js';

export interface LifecycleDeps {
  /** Rate-limited audit of refused tokens; absent: each refusal is appended. */
  rejections?: RejectionAudit;
  identity: IdentityVerifier;
  gate: AccessGate;
  vault: Vault;
  audit: AuditLog;
  sessions: SessionRegistry;
}

/** The protocol step of `open`: logs in upstream with the revealed credential (wiped after). */
export type ConnectUpstream<U> = (auth: Authorized, credential: Buffer) => Promise<U>;

export interface AttachOptions<R extends SessionRecording> {
  /** Client address `ip:port`. */
  client: string;
  /** Opens the recording (catalog entry and data file) in the broker's format. */
  record(meta: RecordingStart): Promise<R>;
  /** Ends the session with a one-line reason: auditor kill, grant expiry or revocation, recording failure. */
  end(reason: string): void;
  /** Shows the user a line and changes nothing (the shutdown warning of a graceful stop). */
  notify?(message: string): void;
  /** Extra `session.start` fields (Postgres: the database). */
  audit?: { database?: string };
  /** As in OpenRequest: a client that left meanwhile gets no session (refusal `gone`). */
  signal?: AbortSignal;
}

export class SessionLifecycle {
  constructor(private readonly deps: LifecycleDeps) {}

  /**
   * Verify → authorize → reveal → connect. Resolves to the proof and the broker's upstream, or
   * throws SessionRefused (audited). If `req.signal` aborts after this resolves, the caller
   * closes the upstream it got.
   */
  async open<U>(req: OpenRequest, connect: ConnectUpstream<U>): Promise<{ auth: Authorized; upstream: U }> {
    const identity = await this.handleVerify(req);
    this.checkPresent(req.signal);
    const auth = await this.handleAuthorize(req, identity);
    this.checkPresent(req.signal);
    const upstream = await this.handleConnect(req, auth, connect);
    return { auth, upstream };
  }

  private async handleVerify(req: OpenRequest): Promise<Identity> {
    if (req.credential.kind === 'identity') return req.credential.identity;
    try {
      return await this.deps.identity.verify(req.credential.token);
    } catch (err) {
      if (err instanceof StoreUnavailable) {
        this.audit(req.protocol, undefined, { type: 'session.refused', target: req.target, login: req.login, why: 'access store unavailable', code: 'unavailable', client: req.client });
        throw new SessionRefused('unavailable', StoreUnavailable.MESSAGE);
      }
      const reason = err instanceof TokenRejected ? err.reason : 'could not verify the token';
      const event = auditEvent('session.refused', { protocol: req.protocol, target: req.target, login: req.login, why: `token rejected: ${reason}`, client: req.client });
      // Counted per source beyond a few per minute (access/rejection-audit.ts), never dropped;
      // an offboarded person's attempt is always written in full.
      if (this.deps.rejections && !(err instanceof IdentityRevoked)) void this.deps.rejections.rejected({ ...event, via: req.protocol, reason }, sourceOf(req.client.replace(/:\d+$/, ''))).catch((e) => console.error(`pam ${req.protocol}: audit append failed`, e));
      else this.audit(req.protocol, undefined, event);
      // An offboarded person's token is refused for good: a final refusal, not a retry prompt.
      if (err instanceof IdentityRevoked) throw new SessionRefused('offboarded', reason);
      throw new SessionRefused('token', reason);
    }
  }

  private async handleAuthorize(req: OpenRequest, identity: Identity): Promise<Authorized> {
    try {
      return await this.deps.gate.authorize(identity, req.target, req.login, req.protocol);
    } catch (err) {
      if (err instanceof AccessDenied) throw new SessionRefused(err.code, err.message); // the gate audited it
      if (err instanceof StoreUnavailable) {
        // A known condition, not a fault: one log line per outage comes from the store itself.
        this.audit(req.protocol, identity, { type: 'session.refused', target: req.target, login: req.login, why: 'access store unavailable', code: 'unavailable', client: req.client });
        throw new SessionRefused('unavailable', StoreUnavailable.MESSAGE);
      }
      console.error(`pam ${req.protocol}: authorization failed:`, err);
      this.audit(req.protocol, identity, { type: 'session.refused', target: req.target, login: req.login, why: 'authorization failed', client: req.client });
      throw new SessionRefused('error', 'authorization failed; try again later');
    }
  }

  /** Reveals the credential named by the proof, hands it to the broker's login, wipes it. */
  private async handleConnect<U>(req: OpenRequest, auth: Authorized, connect: ConnectUpstream<U>): Promise<U> {
    const where = { target: auth.target.name, login: auth.login, grant: auth.grant.id };
    const failed = (why: string): void => this.audit(req.protocol, auth.identity, { type: 'session.failed', ...where, why, code: 'upstream' });
    let credential: Buffer;
    try {
      const name = auth.target.logins[auth.login]?.secret;
      if (!name) throw new Error(`target "${auth.target.name}" has no login "${auth.login}"`);
      credential = await this.deps.vault.reveal(name);
    } catch (err) {
      failed(`credential unavailable: ${(err as Error).message}`);
      throw new SessionRefused('credential', `the credential for ${auth.login}@${auth.target.name} is not available on this proxy; ask an administrator`);
    }
    try {
      this.checkPresent(req.signal);
      return await connect(auth, credential);
    } catch (err) {
      if (err instanceof SessionRefused) throw err;
      if (err instanceof TargetRefused) {
        this.audit(req.protocol, auth.identity, { type: 'session.refused', ...where, why: err.message, code: err.code, ...err.detail });
        throw new SessionRefused(err.code, err.message);
      }
      const why = err instanceof Error ? err.message : 'target unreachable';
      failed(why);
      throw new SessionRefused('upstream', why);
    } finally {
      credential.fill(0);
    }
  }

  /**
   * Recording → registry → grant watch → `session.start`. The session id is the recording id.
   * Throws SessionRefused: `recording` (audited) if the recording cannot be opened, `gone` (and
   * closes the recording) if the client left meanwhile.
   */
  async attach<R extends SessionRecording>(auth: Authorized, opts: AttachOptions<R>): Promise<LiveSession<R>> {
    const { identity, grant } = auth;
    const protocol = auth.target.protocol;
    const where = { target: auth.target.name, login: auth.login, grant: grant.id };
    let recording: R;
    try {
      recording = await opts.record({
        user: identity.user, subject: identity.subject, login: auth.login, target: auth.target.name, clientAddress: opts.client, grantId: grant.id,
      });
    } catch (err) {
      console.error(`pam ${protocol}: opening the recording failed:`, err);
      this.audit(protocol, identity, { type: 'session.failed', ...where, why: `recording could not be opened: ${(err as Error).message}`, code: 'recording' });
      throw new SessionRefused('recording', 'the session could not be recorded; try again later');
    }
    if (opts.signal?.aborted) {
      await recording.close('client disconnected during login').catch(() => undefined);
      throw new SessionRefused('gone', 'the client went away');
    }
    // `recording: { mode }` of the target (absent = strict): strict ends the session, because
    // what cannot be recorded may not happen; best-effort lets it go on and marks the gap.
    const mode = auth.target.recordingMode ?? 'strict';
    const gap: RecordingGap = {};
    recording.onError = (err) => {
      console.error(`pam ${protocol}: recording ${recording.id} failed (${mode}):`, err);
      if (mode === 'strict') {
        this.audit(protocol, identity, { type: 'recording.failed', ...where, recording: recording.id, mode, error: err.message });
        opts.end(`recording failed (${err.message}); session ended (recording mode strict)`);
        return;
      }
      if (gap.from) return;
      gap.from = new Date().toISOString();
      gap.error = err.message;
      this.audit(protocol, identity, { type: 'recording.gap', ...where, recording: recording.id, mode, error: err.message, from: gap.from });
    };
    const releases = [
      this.deps.sessions.register({
        id: recording.id, protocol, user: identity.user, subject: identity.subject, target: auth.target.name, login: auth.login,
        grantId: grant.id, recordingId: recording.id, clientAddress: opts.client, startedAt: new Date().toISOString(),
      }, opts.end, opts.notify),
      this.deps.gate.watchGrant(grant, opts.end),
    ];
    // The session is served only once its start is in the audit log (written into the file, so
    // it survives a crash of this process; recorder/audit-log.ts). A start that cannot be
    // written refuses the session: a session nobody can find in the log may not run.
    try {
      await this.deps.audit.append({ ...byActor(identity), protocol, type: 'session.start', ...where, ...opts.audit, recording: recording.id, client: opts.client });
    } catch (err) {
      console.error(`pam ${protocol}: audit append failed`, err);
      for (const r of releases) r();
      await recording.close('the session start could not be audited').catch(() => undefined);
      throw new SessionRefused('recording', 'the session could not be audited; try again later');
    }
    return new LiveSession(auth, recording, releases, (e) => this.audit(protocol, identity, e), gap);
  }

  private checkPresent(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw new SessionRefused('gone', 'the client went away');
  }

  private audit(protocol: BrokerProtocol, who: Actor | undefined, event: AuditEvent): void {
    this.deps.audit.append({ ...(who ? byActor(who) : {}), protocol, ...event }).catch((err) => console.error(`pam ${protocol}: audit append failed`, err));
  }
}

/** A running session's handle on the lifecycle: release the watchers, then seal and audit. */
/** When a best-effort recording stopped, and why. */
interface RecordingGap {
  from?: string;
  error?: string;
}

export class LiveSession<R extends SessionRecording = SessionRecording> {
  private finishing: Promise<void> | undefined;

  constructor(
    readonly auth: Authorized,
    readonly recording: R,
    private readonly releases: (() => void)[],
    private readonly audit: (event: AuditEvent) => void,
    /** Set once a best-effort recording failed: from then on the session ran unrecorded. */
    private readonly gap: RecordingGap = {},
  ) {}

  get id(): string {
    return this.recording.id;
  }

  /** Stops the registry entry and the grant watch, so nothing ends the session twice. Idempotent. */
  release(): void {
    for (const r of this.releases.splice(0)) r();
  }

  /** Releases, seals the recording (data file and catalog entry), audits `session.end`. Idempotent. */
  finish(reason: string): Promise<void> {
    this.finishing ??= this.handleFinish(reason);
    return this.finishing;
  }

  private async handleFinish(reason: string): Promise<void> {
    this.release();
    // The gap goes into the catalog entry's end reason, and into `session.end`.
    const closeReason = this.gap.from ? `${reason}; recording stopped at ${this.gap.from} (${this.gap.error}), the session went on unrecorded (recording mode best-effort)` : reason;
    try {
      await this.recording.close(closeReason);
    } catch (err) {
      console.error(`pam: sealing recording ${this.recording.id} failed`, err);
    }
    const sha256 = this.recording.sha256;
    this.audit({ type: 'session.end', target: this.auth.target.name, login: this.auth.login, recording: this.recording.id, reason, ...(sha256 ? { sha256 } : {}), ...(this.gap.from ? { recording_gap: { from: this.gap.from, error: this.gap.error } } : {}) });
  }
}
