import ssh2 from 'ssh2';
import type { Authorized } from '../../access/access.types.js';
import type { SshRecorder } from '../../recorder/ssh-recorder.js';
import type { AuditEvent } from '../../recorder/audit.types.js';
import { auditEvent, byActor, type Actor } from '../../recorder/audit-events.js';
import type { BrokerDeps } from '../broker.types.js';
import { DisconnectReason, parseUsername, readCredential, sendBanner, sendDisconnect, type SshKeyLookup } from './auth.js';
import { StoreUnavailable } from '../../access/store.js';
import { MAX_TOKEN_BYTES } from '../../access/identity.js';
import { auditLoginTimeout, type LoginTicket } from '../login-guard.js';
import { handleSessionChannel, type ChannelContext, type Terminable } from './channels.js';
import type { OnEnter } from './enter-gate.js';
import { CommandPolicy } from './command-policy.js';
import { handleDirectTcpip } from './forward-policy.js';
import { RemoteForwards } from './remote-forward.js';
import { ForwardedAgent, SessionForwards } from './session-forward.js';
import { HostKeyMismatch, UpstreamError } from './errors.js';
import { connectUpstream } from './upstream.js';
import { fairReads } from './fair-reads.js';
import { SessionLifecycle, SessionRefused, type LiveSession } from '../session-lifecycle.js';

type Connection = ssh2.Connection;
type AuthContext = ssh2.AuthContext;
type Client = ssh2.Client;

/** What the listener passes to each connection. */
export interface SshBrokerOptions {
  /** `pam login --key` bindings; absent = publickey auth is refused. */
  keys?: SshKeyLookup;
  /**
   * Replaces the line check at each Enter of pty sessions (proxy/ssh/enter-gate.ts). Without it
   * (or when it returns undefined) the broker checks lines against deps.policy.
   */
  onEnter?: (auth: Authorized) => OnEnter | undefined;
  /** How long a command held by a `review` rule waits for an approver; default 5 minutes. */
  reviewTimeoutMs?: number;
  /** Failed attempts before the connection is dropped. */
  maxAuthAttempts?: number;
}

/** Refusals that end the connection with an SSH disconnect naming the condition. */
const DISCONNECT_FOR: Partial<Record<string, number>> = {
  unavailable: DisconnectReason.SERVICE_NOT_AVAILABLE,
  'login-timeout': DisconnectReason.BY_APPLICATION,
  'preauth-bytes': DisconnectReason.PROTOCOL_ERROR,
};

type Step = 'authenticate' | 'relay' | 'ended';

/**
 * One client connection, read top to bottom:
 * read the credential (token or bound key) → the session lifecycle's open (verify, authorize,
 * reveal, then our pinned-host-key login) and attach (recording, registry, grant watch) →
 * accept → relay channels → end (client exit, target exit, grant end, kill) → lifecycle finish.
 *
 * Authorization and the upstream login happen while the client waits for the answer to its
 * auth request, so a refusal (no grant, host key mismatch) is a failed login with a reason the
 * user sees, not an open session that dies.
 */
export class SshConnection {
  private step: Step = 'authenticate';
  private attempts = 0;
  private refusal: string | undefined;
  private refusalCode: string | undefined;
  private auth: Authorized | undefined;
  private upstream: Client | undefined;
  private live: LiveSession<SshRecorder> | undefined;
  private readonly lifecycle: SessionLifecycle;
  /** Aborted when the session ends, so an open or attach in flight stops. */
  private readonly gone = new AbortController();
  private readonly relays = new Set<Terminable>();
  private user: Actor | undefined;
  private ending: Promise<void> | undefined;
  /** Given to the upstream login; relays the target's agent channels once a rule allowed it. */
  private readonly agent = new ForwardedAgent();

  constructor(
    private readonly deps: BrokerDeps,
    private readonly opts: SshBrokerOptions,
    private readonly client: Connection,
    private readonly clientAddress: string,
    private readonly onGone: (c: SshConnection) => void,
    /** The login deadline and per-source slot (proxy/login-guard.ts); done once the session opens. */
    private readonly login?: LoginTicket,
  ) {
    this.lifecycle = new SessionLifecycle(deps);
    client.on('authentication', (ctx) => void this.handleAuthentication(ctx).catch((err) => {
      // Ours, not the user's: refuse without internals, keep the cause for the operator.
      console.error('ssh broker: authentication failed unexpectedly', err);
      try {
        this.refuse(ctx, 'internal proxy error; try again later');
      } catch {
        this.client.end();
      }
    }));
    client.on('ready', () => this.handleReady());
    client.on('error', () => {});
    client.on('close', () => void this.end('client disconnected'));
  }

  private audit(event: AuditEvent): void {
    this.deps.audit.append({ ...(this.user ? byActor(this.user) : {}), protocol: 'ssh', ...event }).catch((err) => {
      console.error('ssh broker: audit append failed', err);
    });
  }

  // ── authenticate → authorize → open upstream (the lifecycle's open) ────────────────────

  private async handleAuthentication(ctx: AuthContext): Promise<void> {
    if (this.step !== 'authenticate') return ctx.reject();
    if (this.refusal) return this.tellRefusal(ctx, this.refusal);
    const parsed = parseUsername(ctx.username);
    if (!parsed) return this.refuse(ctx, `user name must be LOGIN@TARGET (e.g. ssh root@web-1@proxy), got "${ctx.username.slice(0, 100)}"`);
    if (ctx.method === 'none') return ctx.reject(this.methods());

    let cred;
    try {
      cred = await readCredential(ctx, this.opts.keys);
    } catch (err) {
      // A key lookup needs the store: an outage is said as such, not as a bad key.
      if (err instanceof StoreUnavailable) return this.refuse(ctx, StoreUnavailable.MESSAGE, 'unavailable');
      cred = undefined;
    }
    if (cred === 'answered') return;
    if (!cred) return this.fail(ctx);
    if (cred.kind === 'token' && Buffer.byteLength(cred.token, 'utf8') > MAX_TOKEN_BYTES) {
      // Not a token (none is longer): refused before the verifier or the store see it.
      const event = auditEvent('token.rejected', { via: 'ssh', reason: 'token too large', client: this.clientAddress });
      void (this.deps.rejections ? this.deps.rejections.rejected(event, this.clientAddress.replace(/:\d+$/, '')) : this.deps.audit.append(event)).catch(() => undefined);
      return this.fail(ctx, `token rejected: longer than ${MAX_TOKEN_BYTES} bytes, which no IAM token is; paste the token from \`pam login\``);
    }

    let opened;
    try {
      opened = await this.lifecycle.open({
        protocol: 'ssh', target: parsed.target, login: parsed.login, client: this.clientAddress, signal: this.gone.signal,
        credential: cred.kind === 'key' ? { kind: 'identity', identity: cred.identity } : cred,
      }, (auth, secret) => this.connect(auth, secret));
    } catch (err) {
      if (!(err instanceof SessionRefused)) throw err;
      if (err.code === 'gone') return;
      if (err.code === 'token') return this.fail(ctx, `token rejected: ${err.message}; get a fresh token (pam login)`);
      return this.refuse(ctx, err.message, err.code);
    }
    this.upstream = opened.upstream;
    if (this.ending) {
      this.upstream.end();
      return;
    }
    this.user = opened.auth.identity;
    if (!(await this.handleAuthorized(ctx, opened.auth))) return;
    this.auth = opened.auth;
    this.step = 'relay';
    this.login?.done();
    fairReads(this.client);
    fairReads(this.upstream);
    ctx.accept();
  }

  /** The protocol step of open: the pinned-host-key login; errors other than ours become "unreachable". */
  private async connect(auth: Authorized, secret: Buffer): Promise<Client> {
    try {
      return await connectUpstream(auth, secret, { agent: this.agent });
    } catch (err) {
      throw err instanceof UpstreamError || err instanceof HostKeyMismatch ? err : new UpstreamError('target unreachable', { cause: err });
    }
  }

  private methods(): ('keyboard-interactive' | 'password' | 'publickey')[] {
    return this.opts.keys ? ['publickey', 'keyboard-interactive', 'password'] : ['keyboard-interactive', 'password'];
  }

  /** A failed attempt the client may retry (bad or missing token). */
  private fail(ctx: AuthContext, message?: string): void {
    if (++this.attempts >= (this.opts.maxAuthAttempts ?? 6)) return this.refuse(ctx, message ?? 'too many failed attempts');
    if (message && ctx.method === 'keyboard-interactive') {
      ctx.prompt([], 'pam-proxy', message, () => ctx.reject(this.methods()));
      return;
    }
    if (message) sendBanner(this.client, `pam-proxy: ${message}`);
    ctx.reject(this.methods());
  }

  /**
   * A final refusal: the reason goes to the client (as keyboard-interactive instructions, which
   * OpenSSH prints, or as a USERAUTH_BANNER for other methods), then the connection is dropped
   * without a USERAUTH_FAILURE: on a failure OpenSSH would move on to its next method and sit
   * at a password prompt instead of reading the disconnect.
   */
  private refuse(ctx: AuthContext, message: string, code?: string): void {
    this.refusal = message;
    this.refusalCode = code;
    this.tellRefusal(ctx, message);
  }

  private tellRefusal(ctx: AuthContext, message: string): void {
    const close = () => this.closeWith(message);
    if (ctx.method === 'keyboard-interactive') {
      ctx.prompt([], 'pam-proxy: access refused', message, close);
      return;
    }
    sendBanner(this.client, `pam-proxy: access refused: ${message}`);
    close();
  }

  /** Ends the connection; conditions with a code of their own (store outage, timeout) say so in the disconnect. */
  private closeWith(message: string): void {
    const reason = this.refusalCode ? DISCONNECT_FOR[this.refusalCode] : undefined;
    if (reason !== undefined) sendDisconnect(this.client, reason, message);
    this.client.end();
  }

  /** login_timeout passed while still authenticating (proxy/login-guard.ts). */
  loginTimedOut(seconds: number): void {
    if (this.step !== 'authenticate') return;
    const message = `login timeout: authenticate within ${seconds}s`;
    auditLoginTimeout(this.deps, 'ssh', this.clientAddress, this.clientAddress.replace(/:\d+$/, ''));
    this.refusalCode = 'login-timeout';
    this.closeWith(message);
    void this.end('login timeout');
  }

  /**
   * The client sent more than the pre-auth byte cap before logging in (proxy/login-guard.ts):
   * told why in the disconnect (a real client reads it), then dropped. Audited by the server.
   */
  preauthOverLimit(bytes: number, limit: number): void {
    if (this.step !== 'authenticate') return;
    this.refusalCode = 'preauth-bytes';
    this.closeWith(`sent ${bytes} bytes before logging in, over the limit of ${limit}`);
    void this.end('pre-auth bytes over the limit');
  }

  /** The lifecycle's attach: recording, live-session registry, grant watch, `session.start`. */
  private async handleAuthorized(ctx: AuthContext, auth: Authorized): Promise<boolean> {
    const { identity } = auth;
    try {
      this.live = await this.lifecycle.attach(auth, {
        client: this.clientAddress,
        signal: this.gone.signal,
        record: (meta) => this.deps.recordings.start('ssh', meta, {
          header: { width: 80, height: 24, env: {}, title: `${identity.user} as ${auth.login}@${auth.target.name}` },
        }),
        end: (reason) => void this.end(reason),
        notify: (message) => { for (const r of this.relays) r.notice?.(message); },
      });
    } catch (err) {
      this.upstream!.end();
      if (!(err instanceof SessionRefused)) throw err;
      if (err.code !== 'gone') this.refuse(ctx, err.message, err.code);
      return false;
    }
    this.upstream!.on('close', () => void this.end('target closed the connection'));
    this.upstream!.on('error', () => {});
    return true;
  }

  // ── relay ─────────────────────────────────────────────────────────────────────────────

  private handleReady(): void {
    const auth = this.auth!;
    // Roles are resolved once, at login: a session keeps the roles it started with.
    const subject = this.deps.policy?.subjectOf(auth.identity, auth.target.name, auth.login)
      ?? { user: auth.identity.user, groups: auth.identity.groups, roles: [], target: auth.target.name, login: auth.login };
    const recording = this.live!.recording;
    const audit = (e: AuditEvent) => this.audit({ target: auth.target.name, login: auth.login, recording: recording.id, ...e });
    const commands = this.deps.policy
      ? new CommandPolicy({
        policy: this.deps.policy, subject, identity: auth.identity, holds: this.deps.holds, reviewTimeoutMs: this.opts.reviewTimeoutMs,
        sessionId: recording.id, audit, marker: (t) => recording.marker(t),
      })
      : undefined;
    const onEnter: OnEnter | undefined = this.opts.onEnter?.(auth) ?? (commands ? (line, io) => commands.decide(line, { ...io, via: 'shell' }) : undefined);
    const ctx: ChannelContext = {
      upstream: this.upstream!,
      recording,
      envAllow: this.deps.config.ssh.envAllow,
      subject,
      policy: this.deps.policy,
      commands,
      onEnter,
      audit,
      countBytes: this.deps.meter ? (direction, n) => this.deps.meter!.bytes('ssh', direction, n) : undefined,
      ...(auth.target.protocol === 'ssh' && auth.target.recordTransfers === 'content' ? { transferContent: () => this.deps.recordings.transfers().sink() } : {}),
      track: (r) => {
        this.relays.add(r);
        return () => this.relays.delete(r);
      },
    };
    ctx.forwards = new SessionForwards(ctx, this.client, this.agent);
    this.client.on('session', (accept) => {
      if (this.step !== 'relay') return;
      handleSessionChannel(ctx, accept());
    });
    this.client.on('tcpip', (accept, reject, info) => handleDirectTcpip(ctx, accept, reject, info));
    const remote = new RemoteForwards(ctx, this.client);
    this.client.on('request', (accept, reject, name, info) => remote.handleRequest(accept, reject, name, info));
  }

  // ── end ───────────────────────────────────────────────────────────────────────────────

  /** Ends the session once, whatever asked first; closes both sides and seals the recording. */
  end(reason: string): Promise<void> {
    this.ending ??= this.handleEnd(reason);
    return this.ending;
  }

  private async handleEnd(reason: string): Promise<void> {
    const wasRelaying = this.step === 'relay';
    this.step = 'ended';
    this.login?.done();
    this.gone.abort();
    this.live?.release();
    const proxySide = reason !== 'client disconnected' && reason !== 'target closed the connection';
    if (this.live && proxySide) this.live.recording.marker(`kill: ${reason}`);
    for (const r of [...this.relays]) r.terminate(reason);
    // Give the reason line and exit messages a moment to leave, then drop both sides.
    if (wasRelaying && proxySide) await new Promise((r) => setTimeout(r, 150));
    this.upstream?.end();
    this.client.end();
    await this.live?.finish(reason);
    this.onGone(this);
  }
}
