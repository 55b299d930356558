import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Authorized } from '../../access/access.types.js';
import type { QueryLogWriter } from '../../recorder/query-log-writer.js';
import type { BrokerDeps } from '../broker.types.js';
import type { PostgresTarget } from '../../config/config.types.js';
import * as msg from './backend-messages.js';
import { BackendStream } from './backend-stream.js';
import type { CancelKeys } from './cancel-keys.js';
import { decodeStartupPacket, FrontendCode, FrontendFramer, ProtocolError, type Frame } from './frontend-codec.js';
import type { StatementTracker } from './statement-tracker.js';
import { sessionTracker } from './policy-seam.js';
import { ClientNotices, SessionReview } from './session-review.js';
import { acceptStartup, isTerminate, readToken, recordingStart } from './session-startup.js';
import { DEFAULT_REVIEW_TIMEOUT_MS } from '../../config/defaults.js';
import { fatalFor } from './session-errors.js';
import { endClient, endingOf, type Fatal } from './session-end.js';
import { SessionLifecycle, SessionRefused, type LiveSession } from '../session-lifecycle.js';
import { auditLoginTimeout, MAX_PREAUTH_MESSAGE_BYTES, sourceOf, type LoginTicket } from '../login-guard.js';
import { batchFrontend, SettingBarrier, writePieces } from './session-relay.js';
import { connectUpstream, sendCancel, type UpstreamOptions } from './upstream.js';
import { keepWhatIsUnsent, letGoUpstream, ownedForTls, readUpstream } from './upstream-leg.js';
import type { PooledConnection, UpstreamPool } from './upstream-pool.js';
import { brokenPin, statusBreaksPin } from './parse-pins.js';
import { byActor } from '../../recorder/audit-events.js';

export interface SessionContext {
  deps: BrokerDeps;
  tls: SecureContext;
  keys: CancelKeys;
  /** Whether a cleartext token may arrive over plain TCP on this connection. */
  plaintextOk: boolean;
  /** How long a `review` hold waits for an approver; default DEFAULT_REVIEW_TIMEOUT_MS (config/defaults.ts). */
  reviewTimeoutMs?: number;
  /** The login deadline and per-source slot (proxy/login-guard.ts); done once the session opens. */
  login?: LoginTicket;
  /** Pre-authenticated target connections (`postgres.upstream_pool`); absent: a login per session. */
  pool?: UpstreamPool;
}

type Step = 'startup' | 'password' | 'opening' | 'relay' | 'closed';

/**
 * One client connection, as a state machine read top to bottom:
 * startup (SSLRequest → TLS, CancelRequest, StartupMessage) → password (the IAM token) →
 * opening (verify, authorize, vault, upstream login, recording) → relay → closed.
 * https://www.postgresql.org/docs/current/protocol-flow.html
 */
export class PostgresSession {
  private step: Step = 'startup';
  private sock: Socket;
  private readonly framer: FrontendFramer;
  /** Client frames held behind a statement that may change a pinned setting (setting-barrier.ts). */
  private readonly barrier = new SettingBarrier();
  private startupParams: Record<string, string> = {};
  private upstreamParams: Record<string, string> = {};
  private broken: { why: string; fatal: Buffer } | undefined;
  private upstream: PooledConnection | undefined;
  /** False when the last upstream chunk went to the client as copies only (ownedForTls): the read buffer may be read into again. */
  private wroteViews = true;
  private readonly backend = new BackendStream();
  private tracker: StatementTracker | undefined;
  private readonly lifecycle: SessionLifecycle;
  private live: LiveSession<QueryLogWriter> | undefined;
  /** Aborted when the session ends, so an open or attach in flight stops. */
  private readonly gone = new AbortController();
  private readonly cleanups: (() => void)[] = [];
  private auth: Authorized | undefined;
  /** Set while an ending session relays up to the next message boundary to send its FATAL. */
  private draining: Fatal | undefined;
  private readonly clientAddress: string;
  /** Holds upstream traffic while a `review` verdict waits (session-review.ts). */
  private review: SessionReview | undefined;
  /** Notices for the client, at a message boundary of the relayed server stream. */
  private readonly notices = new ClientNotices({
    client: () => this.sock, atBoundary: () => this.backend.atBoundary, closed: () => this.isClosed(),
    // What the proxy tells the client is a line of the query log too.
    recorded: (text) => this.live?.recording.event({ type: 'notice', from: 'proxy', severity: 'NOTICE', message: text }),
  });

  constructor(socket: Socket, private readonly ctx: SessionContext) {
    this.sock = socket;
    this.clientAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    // Before login nothing bigger than a token may arrive: a flood of huge "passwords" is refused
    // at the header, never buffered. max_message_bytes applies from the relay on.
    this.framer = new FrontendFramer(MAX_PREAUTH_MESSAGE_BYTES);
    this.lifecycle = new SessionLifecycle(ctx.deps);
    socket.setNoDelay(true);
    this.attach(socket);
  }

  /** Re-reads the step after an await (the client may have gone meanwhile). */
  private isClosed(): boolean {
    return this.step === 'closed';
  }

  private readonly onData = (d: Buffer) => this.onClientData(d);
  private readonly onError = () => this.end('client connection error');
  private readonly onClose = () => this.end('client disconnected');

  private attach(s: Socket): void {
    s.on('data', this.onData);
    s.on('error', this.onError);
    s.on('close', this.onClose);
  }

  private detach(s: Socket): void {
    s.off('data', this.onData);
    s.off('error', this.onError);
    s.off('close', this.onClose);
  }

  private onClientData(chunk: Buffer): void {
    try {
      if (this.step === 'relay') {
        this.ctx.deps.meter?.bytes('postgres', 'client_to_target', chunk.length);
        return this.relayFrames(this.framer.push(chunk));
      }
      if (this.step === 'startup') return this.handleStartup(chunk);
      if (this.step === 'password') return this.handlePassword(chunk);
      // 'opening': a client must wait for ReadyForQuery; keep what it sent for later. A Terminate
      // is the one message allowed: the client left (PostgreSQL closes quietly too).
      if (this.step === 'opening') {
        const [frame] = this.framer.push(chunk, true);
        if (frame?.code === FrontendCode.Terminate) return this.end('client terminated before login completed');
        if (frame) throw new ProtocolError('message sent before authentication completed');
      }
    } catch (err) {
      this.fail(err);
    }
  }

  // ---- startup ----

  private handleStartup(chunk: Buffer): void {
    // node-postgres' `connect(); end()` writes Terminate before the startup packet: the client is
    // gone before it began, so close quietly (PostgreSQL sends nothing either) instead of
    // reading 'X' as a startup length.
    if (this.framer.pending === 0 && isTerminate(chunk)) return this.end('client terminated before startup');
    const [frame] = this.framer.push(chunk, true);
    if (!frame) return;
    const p = decodeStartupPacket(frame.body);
    switch (p.type) {
      case 'ssl-request': {
        if (this.sock instanceof TLSSocket) throw new ProtocolError('SSLRequest over TLS');
        // Bytes after SSLRequest would be read as if they came over TLS (CVE-2021-23214).
        if (this.framer.pending) throw new ProtocolError('received unencrypted data after SSL request');
        const plain = this.sock;
        this.detach(plain);
        plain.on('error', () => {});
        plain.write('S');
        const secure = new TLSSocket(plain, { isServer: true, secureContext: this.ctx.tls });
        this.sock = secure;
        this.attach(secure);
        return;
      }
      case 'gssenc-request':
        this.sock.write('N');
        return this.handleStartup(Buffer.alloc(0));
      case 'cancel-request':
        this.ctx.keys.cancel(p.processId, p.secretKey);
        this.step = 'closed';
        this.sock.end();
        return;
      case 'startup':
        this.startupParams = p.params;
        this.upstreamParams = acceptStartup(p.params, { tls: this.sock instanceof TLSSocket, plaintextOk: this.ctx.plaintextOk, client: this.clientAddress, audit: this.ctx.deps.audit });
        this.framer.regular();
        this.step = 'password';
        this.sock.write(msg.authenticationCleartextPassword());
        return this.handlePassword(Buffer.alloc(0));
    }
  }

  private handlePassword(chunk: Buffer): void {
    const [frame] = this.framer.push(chunk, true);
    if (!frame) return;
    const token = readToken(frame);
    if (token === undefined) return this.end('client terminated before login');
    this.step = 'opening';
    void this.handleOpen(token).catch((err) => this.fail(err));
  }

  // ---- authenticate, authorize, open upstream ----

  private async handleOpen(token: string): Promise<void> {
    const { deps } = this.ctx;
    const database = this.startupParams.database ?? this.startupParams.user!;
    const login = this.startupParams.user!;
    try {
      const opened = await this.lifecycle.open(
        { protocol: 'postgres', target: database, login, client: this.clientAddress, credential: { kind: 'token', token }, signal: this.gone.signal },
        (auth, password) => {
          const o: UpstreamOptions = { target: auth.target as PostgresTarget, login, password, params: this.upstreamParams };
          return this.ctx.pool ? this.ctx.pool.acquire(o) : connectUpstream(o);
        },
      );
      this.auth = opened.auth;
      this.upstream = opened.upstream;
      if (this.isClosed()) {
        opened.upstream.socket.destroy();
        return;
      }
      const target = opened.auth.target as PostgresTarget;
      this.live = await this.lifecycle.attach(opened.auth, {
        client: this.clientAddress,
        signal: this.gone.signal,
        audit: { database: target.database },
        notify: (message) => this.notices.send(message),
        record: (meta) => deps.recordings.start('jsonl', { ...meta, database: target.database }, {
          start: recordingStart(opened.auth, login, this.clientAddress, this.sock instanceof TLSSocket, this.startupParams.options),
        }),
        end: (why) => this.kill(why),
      });
    } catch (err) {
      // A refusal is told with its SQLSTATE (end() closes an upstream already open); a client that left hears nothing.
      if (!(err instanceof SessionRefused)) throw err;
      if (err.code !== 'gone') throw fatalFor(err, database);
      return;
    }
    const { identity } = this.auth;
    const target = this.auth.target as PostgresTarget;
    const up = this.upstream;
    const tracker = (this.tracker = sessionTracker(deps, identity, target.name, login, this.live.recording));
    this.review = new SessionReview({
      holds: deps.holds, auth: this.auth, timeoutMs: this.ctx.reviewTimeoutMs ?? DEFAULT_REVIEW_TIMEOUT_MS, upstream: up.socket,
      client: () => this.sock, closed: () => this.isClosed(), sessionId: () => this.live?.id,
      notice: (text) => this.notices.send(text), mark: (fields) => tracker.mark(fields),
    });
    const key = this.ctx.keys.add(() => {
      // A statement waiting for approval is withdrawn (57014); anything running upstream is cancelled.
      this.review?.cancel();
      sendCancel(target, up.processId, up.secretKey);
    });
    this.cleanups.push(key.release);
    if (this.isClosed()) return;

    const broken = up.parameters.map(([k, v]) => brokenPin(k, v)).find(Boolean);
    if (broken) return this.pinBroken(broken);
    this.sock.write(msg.loginComplete(up.parameters, key.processId, key.secretKey));
    this.step = 'relay';
    this.framer.setLimit(deps.config.postgres.maxMessageBytes);
    this.ctx.login?.done();
    up.socket.on('error', () => this.end('target connection error'));
    up.socket.on('close', () => this.end('target closed the connection'));
    readUpstream(up, (d) => this.onUpstreamData(d));
    if (this.framer.pending) this.relayFrames(this.framer.push(Buffer.alloc(0)));
  }

  // ---- relay ----

  private relayFrames(frames: Frame[]): void {
    if (frames.length === 0) return;
    if (this.barrier.active) return this.barrier.add(frames);
    const tracker = this.tracker!;
    const up = this.upstream!.socket;
    const { items, held, terminate, rest, barrier } = batchFrontend(frames, tracker);
    if (barrier) {
      this.barrier.hold(rest); // the rest waits for every answer (setting-barrier.ts)
      this.sock.pause();
    }
    if (held || this.review!.active) {
      // A statement waits for an approver: it and everything after it queue behind the hold.
      this.review!.push(items);
      if (terminate) this.end('client terminated the session');
      return;
    }
    // Not held, so every item is bytes: one run of untouched frames, or (rewritten) several pieces.
    const ok = writePieces(up, items as Buffer[]);
    if (terminate) return this.end('client terminated the session');
    if (!ok) {
      this.sock.pause();
      up.once('drain', () => {
        if (!this.review?.active && !this.barrier.active) this.sock.resume();
      });
    }
  }

  /** `chunk` may be a view of the reused read buffer: only valid during the call (upstream-reads.ts). */
  private onUpstreamData(chunk: Buffer): void {
    this.wroteViews = true;
    this.relayUpstream(chunk);
    if (this.upstream && this.wroteViews) keepWhatIsUnsent(this.upstream, this.sock);
  }

  private relayUpstream(chunk: Buffer): void {
    if (this.step !== 'relay' && !this.draining) return;
    this.ctx.deps.meter?.bytes('postgres', 'target_to_client', chunk.length);
    let pieces: Buffer[];
    try {
      pieces = this.backend.scan(chunk, (code, held, len) => (code === 0x53 ? this.onParameterStatus(held) : this.tracker!.onBackend(code, held, len)), this.draining !== undefined);
    } catch (err) {
      if (this.draining) return this.finishDrain(false);
      return this.fail(err);
    }
    if (this.broken) {
      // Everything up to the FATAL that replaced the ParameterStatus; nothing after it.
      const at = pieces.indexOf(this.broken.fatal);
      for (const p of pieces.slice(0, at + 1)) this.sock.write(p);
      return this.pinBroken(this.broken.why, at >= 0);
    }
    if (this.draining) {
      for (const p of pieces) this.sock.write(p);
      if (this.backend.atBoundary) this.finishDrain(true);
      return;
    }
    const out = ownedForTls(this.sock, pieces);
    // Copies hold nothing of the read buffer: it need not be replaced for them.
    if (out !== pieces) this.wroteViews = false;
    let ok = writePieces(this.sock, out);
    if (this.notices.pending && this.backend.atBoundary) ok = this.notices.flush();
    const next = this.barrier.release(this.tracker!.outstanding); // every answer is in: what waited goes on
    if (next) {
      this.sock.resume();
      this.relayFrames(next);
    }
    if (!ok) {
      const up = this.upstream!.socket;
      up.pause();
      this.sock.once('drain', () => up.resume());
    }
  }

  /**
   * ParameterStatus (S): a change of standard_conforming_strings or client_encoding would make the
   * server read the next statement differently from the policy: it is replaced by a FATAL and the
   * session ends before another statement is judged (parse-pins.ts).
   */
  private onParameterStatus(held: Buffer | undefined): Buffer | undefined {
    const why = statusBreaksPin(held);
    if (!why || this.broken) return undefined;
    this.broken = { why, fatal: msg.errorResponse('FATAL', '0A000', `terminating connection: ${why}; this proxy judges SQL with standard_conforming_strings on and UTF8 text`) };
    return this.broken.fatal;
  }

  private pinBroken(why: string, told = false): void {
    void this.ctx.deps.audit.append({ ...(this.auth ? byActor(this.auth.identity) : {}), type: 'postgres.parse-pin.broken', target: this.auth?.target.name, login: this.auth?.login, session: this.live?.id, why }).catch(() => undefined);
    this.end(`parse pin broken: ${why}`, told ? undefined : { sqlstate: '0A000', message: `terminating connection: ${why}` });
  }

  // ---- end ----

  /** Ends the session with FATAL `why` to the client (auditor kill, grant end, recording failure). */
  kill(why: string): void {
    this.end(why, { sqlstate: '57P01', message: `terminating connection: ${why}` });
  }

  /** login_timeout passed before the session opened (proxy/login-guard.ts). */
  loginTimedOut(seconds: number): void {
    if (this.step === 'relay' || this.step === 'closed') return;
    auditLoginTimeout(this.ctx.deps, 'postgres', this.clientAddress, sourceOf(this.sock.remoteAddress));
    this.end('login timeout', { sqlstate: '08006', message: `login timeout: authenticate within ${seconds}s` });
  }

  private fail(err: unknown): void {
    const { reason, fatal } = endingOf(err);
    this.end(reason, fatal);
  }

  private end(reason: string, fatal?: Fatal): void {
    if (this.step === 'closed') {
      if (this.draining) this.finishDrain(false);
      return;
    }
    const wasRelaying = this.step === 'relay';
    // The FATAL the user is told goes into the query log before its end line.
    if (fatal) this.live?.recording.event({ type: 'error', from: 'proxy', severity: 'FATAL', sqlstate: fatal.sqlstate, message: fatal.message });
    this.step = 'closed';
    this.ctx.login?.done();
    this.gone.abort();
    this.live?.release();
    this.review?.drop(); // a held statement is dropped with its session (the hold expires)
    for (const c of this.cleanups.splice(0)) c();
    const up = this.upstream?.socket;
    // A statement still running upstream is cancelled: a killed session must not keep working.
    if (up && this.tracker && this.tracker.outstanding > 0) {
      const u = this.upstream!;
      sendCancel(this.auth!.target as PostgresTarget, u.processId, u.secretKey);
    }
    const s = this.sock;
    // A FATAL can only go in at a message boundary of what the client has received. Mid-message,
    // relay up to the next boundary (the cancel above makes it come soon), at most 1.5 s.
    if (fatal && wasRelaying && !this.backend.atBoundary && up && !up.destroyed && !s.destroyed) {
      this.draining = fatal;
      this.sock.off('data', this.onData);
      setTimeout(() => this.finishDrain(false), 1500).unref();
    } else {
      // A clean end (a boundary, nothing outstanding, last ReadyForQuery idle) may pool the connection.
      const clean = !fatal && wasRelaying && !this.broken && this.backend.atBoundary && this.tracker?.outstanding === 0 && this.tracker.txStatus === 'I' && !this.review?.active;
      if (up) letGoUpstream(this.upstream!, this.ctx.pool, clean);
      endClient(s, fatal && (!wasRelaying || this.backend.atBoundary) ? fatal : undefined);
    }
    void this.live?.finish(reason);
  }

  /** Ends a session that was relaying up to a message boundary; sends its FATAL if it got there. */
  private finishDrain(atBoundary: boolean): void {
    const fatal = this.draining;
    if (!fatal) return;
    this.draining = undefined;
    if (this.upstream) letGoUpstream(this.upstream, undefined, false); // closed: it ended mid-message
    endClient(this.sock, atBoundary ? fatal : undefined);
  }
}
