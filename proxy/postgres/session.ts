import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Authorized } from '../../access/access.types.js';
import type { QueryLogWriter } from '../../recorder/query-log-writer.js';
import type { BrokerDeps } from '../broker.types.js';
import type { PostgresTarget } from '../../config/config.types.js';
import * as msg from './backend-messages.js';
import { BackendStream } from './backend-stream.js';
import type { CancelKeys } from './cancel-keys.js';
import { decodeStartupPacket, FrontendCode, FrontendFramer, ProtocolError } from './frontend-codec.js';
import { StatementTracker } from './statement-tracker.js';
import { fastpathPolicyCheck, sqlPolicyCheck } from './policy-seam.js';
import { holdStatement, ReviewGate } from './review-gate.js';
import { DEFAULT_REVIEW_TIMEOUT_MS } from '../../config/defaults.js';
import { fatalFor, SessionFatal } from './session-errors.js';
import { SessionLifecycle, SessionRefused, type LiveSession } from '../session-lifecycle.js';
import { MAX_PREAUTH_MESSAGE_BYTES, sourceOf, type LoginTicket } from '../login-guard.js';
import { batchFrontend } from './session-relay.js';
import { connectUpstream, sendCancel, type UpstreamConnection } from './upstream.js';
import { brokenPin, parseParameterStatus, pinStartup } from './parse-pins.js';
import { auditEvent, byActor } from '../../recorder/audit-events.js';

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
  private startupParams: Record<string, string> = {};
  private upstreamParams: Record<string, string> = {};
  private broken: { why: string; fatal: Buffer } | undefined;
  private upstream: UpstreamConnection | undefined;
  private readonly backend = new BackendStream();
  private tracker: StatementTracker | undefined;
  private readonly lifecycle: SessionLifecycle;
  private live: LiveSession<QueryLogWriter> | undefined;
  /** Aborted when the session ends, so an open or attach in flight stops. */
  private readonly gone = new AbortController();
  private readonly cleanups: (() => void)[] = [];
  private auth: Authorized | undefined;
  /** Set while an ending session relays up to the next message boundary to send its FATAL. */
  private draining: { sqlstate: string; message: string } | undefined;
  private readonly clientAddress: string;
  /** Holds upstream traffic while a `review` verdict waits (created on first use). */
  private gate: ReviewGate | undefined;
  private holdAbort: AbortController | undefined;
  private holdCanceled = false;
  /** Notices for the client, waiting for a message boundary of the relayed server stream. */
  private notices: Buffer[] = [];

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
        return this.handleRelay(chunk);
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
        if (!p.params.user) throw new SessionFatal('28000', 'no PostgreSQL user name specified in startup packet');
        this.upstreamParams = this.pinnedParams(p.params);
        if (p.params.replication && p.params.replication !== 'false') throw new SessionFatal('28000', 'replication connections are not available through the proxy');
        if (!(this.sock instanceof TLSSocket) && !this.ctx.plaintextOk) {
          throw new SessionFatal('28000', 'this proxy accepts IAM tokens only over TLS: connect with sslmode=require');
        }
        this.framer.regular();
        this.step = 'password';
        this.sock.write(msg.authenticationCleartextPassword());
        return this.handlePassword(Buffer.alloc(0));
    }
  }

  private handlePassword(chunk: Buffer): void {
    const [frame] = this.framer.push(chunk, true);
    if (!frame) return;
    // `client.connect(); client.end()` sends Terminate before any password: a clean close, as PostgreSQL does.
    if (frame.code === FrontendCode.Terminate) return this.end('client terminated before login');
    if (frame.code !== FrontendCode.Password) throw new ProtocolError('expected a password message (the IAM token)');
    const nul = frame.body.indexOf(0);
    if (nul !== frame.body.length - 1) throw new ProtocolError('malformed password message');
    const token = frame.body.toString('utf8', 0, nul);
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
        (auth, password) => connectUpstream({ target: auth.target as PostgresTarget, login, password, params: this.upstreamParams }),
      );
      this.auth = opened.auth;
      this.upstream = opened.upstream;
      if (this.isClosed()) {
        opened.upstream.socket.destroy();
        return;
      }
      const { identity } = opened.auth;
      const target = opened.auth.target as PostgresTarget;
      this.live = await this.lifecycle.attach(opened.auth, {
        client: this.clientAddress,
        signal: this.gone.signal,
        audit: { database: target.database },
        notify: (message) => this.noticeToClient(message),
        record: (meta) => deps.recordings.start('jsonl', { ...meta, database: target.database }, {
          start: {
            user: identity.user, subject: identity.subject, email: identity.email, login, target: target.name, database: target.database,
            client: this.clientAddress, grant: opened.auth.grant.id, tls: this.sock instanceof TLSSocket,
            ...(this.startupParams.options !== undefined ? { options: this.startupParams.options } : {}),
          },
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
    const recorder = this.live.recording;
    const seam = deps.policy && { policy: deps.policy, audit: deps.audit };
    this.tracker = new StatementTracker({
      redactParameters: deps.config.postgres.redactParameters,
      check: seam ? sqlPolicyCheck(seam, identity, target.name, login, () => recorder.id) : undefined,
      checkFastpath: seam ? fastpathPolicyCheck(seam, identity, target.name, login, () => recorder.id) : undefined,
      canHold: seam !== undefined && deps.holds !== undefined,
      record: (line) => recorder.line(line),
      onStatement: deps.meter ? (action) => deps.meter!.statement(action) : undefined,
    });
    const key = this.ctx.keys.add(() => {
      // A statement waiting for approval is withdrawn (57014); anything running upstream is cancelled.
      if (this.holdAbort) {
        this.holdCanceled = true;
        this.holdAbort.abort();
      }
      sendCancel(target, up.processId, up.secretKey);
    });
    this.cleanups.push(key.release);
    if (this.isClosed()) return;

    const broken = up.parameters.map(([k, v]) => brokenPin(k, v)).find(Boolean);
    if (broken) return this.pinBroken(broken);
    const hello: Buffer[] = [msg.authenticationOk()];
    for (const [k, v] of up.parameters) hello.push(msg.parameterStatus(k, v));
    hello.push(msg.backendKeyData(key.processId, key.secretKey), msg.readyForQuery('I'));
    this.sock.write(Buffer.concat(hello));
    this.step = 'relay';
    this.framer.setLimit(deps.config.postgres.maxMessageBytes);
    this.ctx.login?.done();
    up.socket.on('data', (d: Buffer) => this.onUpstreamData(d));
    up.socket.on('error', () => this.end('target connection error'));
    up.socket.on('close', () => this.end('target closed the connection'));
    if (up.leftover.length) this.onUpstreamData(up.leftover);
    up.socket.resume();
    if (this.framer.pending) this.handleRelay(Buffer.alloc(0));
  }

  // ---- relay ----

  private handleRelay(chunk: Buffer): void {
    const frames = this.framer.push(chunk);
    if (frames.length === 0) return;
    const tracker = this.tracker!;
    const up = this.upstream!.socket;
    const { items, rewritten, held, terminate } = batchFrontend(frames, tracker);
    if (held || this.gate?.active) {
      // A statement waits for an approver: it and everything after it queue behind the hold.
      this.reviewGate().push(items);
      if (terminate) this.end('client terminated the session');
      return;
    }
    let ok = true;
    if (rewritten) {
      up.cork();
      for (const p of items) ok = up.write(p as Buffer);
      up.uncork();
    } else if (items.length) {
      ok = up.write(items[0] as Buffer);
    }
    if (terminate) return this.end('client terminated the session');
    if (!ok) {
      this.sock.pause();
      up.once('drain', () => {
        if (!this.gate?.active) this.sock.resume();
      });
    }
  }

  private reviewGate(): ReviewGate {
    const { deps } = this.ctx;
    const auth = this.auth!;
    return (this.gate ??= new ReviewGate({
      writeUpstream: (pieces) => {
        const up = this.upstream!.socket;
        up.cork();
        for (const p of pieces) up.write(p);
        up.uncork();
      },
      pauseClient: () => this.sock.pause(),
      resumeClient: () => this.sock.resume(),
      closed: () => this.isClosed(),
      decide: (item) => {
        const abort = (this.holdAbort = new AbortController());
        this.holdCanceled = false;
        return holdStatement({
          holds: deps.holds!, identity: auth.identity, target: auth.target.name, login: auth.login, sessionId: this.live?.id,
          timeoutMs: this.ctx.reviewTimeoutMs ?? DEFAULT_REVIEW_TIMEOUT_MS, signal: abort.signal,
          notice: (text) => this.noticeToClient(text),
          mark: (fields) => this.tracker!.mark(fields),
          canceled: () => this.holdCanceled,
        }, item).finally(() => {
          if (this.holdAbort === abort) this.holdAbort = undefined;
        });
      },
    }));
  }

  /** A NoticeResponse to the client, at the next message boundary of the server stream. */
  private noticeToClient(text: string): void {
    if (this.isClosed()) return;
    const n = msg.noticeResponse('00000', text);
    if (this.backend.atBoundary) this.sock.write(n);
    else this.notices.push(n);
  }

  private onUpstreamData(chunk: Buffer): void {
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
    let ok = true;
    if (pieces.length === 1) ok = this.sock.write(pieces[0]!);
    else if (pieces.length > 1) {
      this.sock.cork();
      for (const p of pieces) ok = this.sock.write(p);
      this.sock.uncork();
    }
    if (this.notices.length && this.backend.atBoundary) ok = this.sock.write(Buffer.concat(this.notices.splice(0)));
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
    const ps = held && parseParameterStatus(held.subarray(5));
    const why = ps && brokenPin(ps.name, ps.value);
    if (!why || this.broken) return undefined;
    this.broken = { why, fatal: msg.errorResponse('FATAL', '0A000', `terminating connection: ${why}; this proxy judges SQL with standard_conforming_strings on and UTF8 text`) };
    return this.broken.fatal;
  }

  /** The startup parameters upstream gets: the server must read SQL as the proxy's parser does (parse-pins.ts). */
  private pinnedParams(params: Record<string, string>): Record<string, string> {
    const pin = pinStartup(params);
    if ('params' in pin) return pin.params;
    void this.ctx.deps.audit.append(auditEvent('session.refused', { protocol: 'postgres', code: 'parse-pin', why: pin.refusal.message, login: params.user, client: this.clientAddress })).catch(() => undefined);
    throw new SessionFatal(pin.refusal.sqlstate, pin.refusal.message);
  }

  private pinBroken(why: string, told = false): void {
    const { deps } = this.ctx;
    void deps.audit.append({ ...(this.auth ? byActor(this.auth.identity) : {}), type: 'postgres.parse-pin.broken', target: this.auth?.target.name, login: this.auth?.login, session: this.live?.id, why }).catch(() => undefined);
    if (told) this.end(`parse pin broken: ${why}`);
    else this.end(`parse pin broken: ${why}`, { sqlstate: '0A000', message: `terminating connection: ${why}` });
  }

  // ---- end ----

  /** Ends the session with FATAL `why` to the client (auditor kill, grant end, recording failure). */
  kill(why: string): void {
    this.end(why, { sqlstate: '57P01', message: `terminating connection: ${why}` });
  }

  /** login_timeout passed before the session opened (proxy/login-guard.ts). */
  loginTimedOut(seconds: number): void {
    if (this.step === 'relay' || this.step === 'closed') return;
    const { deps } = this.ctx;
    const event = auditEvent('session.refused', { protocol: 'postgres', why: 'login timeout', code: 'login-timeout', client: this.clientAddress });
    void (deps.rejections ? deps.rejections.rejected({ ...event, via: 'postgres', reason: 'login timeout' }, sourceOf(this.sock.remoteAddress)) : deps.audit.append(event)).catch(() => undefined);
    this.end('login timeout', { sqlstate: '08006', message: `login timeout: authenticate within ${seconds}s` });
  }

  private fail(err: unknown): void {
    if (err instanceof SessionFatal) return this.end(err.message, { sqlstate: err.sqlstate, message: err.message });
    if (err instanceof ProtocolError) return this.end(`protocol error: ${err.message}`, { sqlstate: err.sqlstate, message: err.message });
    // Anything else is ours: the client gets a generic message, never internals; the operator gets the error.
    console.error('pam postgres: session error:', err);
    this.end(`internal error: ${(err as Error)?.message ?? err}`, { sqlstate: 'XX000', message: 'internal proxy error; the session was closed' });
  }

  private end(reason: string, fatal?: { sqlstate: string; message: string }): void {
    if (this.step === 'closed') {
      if (this.draining) this.finishDrain(false);
      return;
    }
    const wasRelaying = this.step === 'relay';
    this.step = 'closed';
    this.ctx.login?.done();
    this.gone.abort();
    this.live?.release();
    this.holdAbort?.abort(); // a held statement is dropped with its session (the hold expires)
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
      if (up) this.closeUpstream(up);
      if (!s.destroyed) {
        if (fatal && (!wasRelaying || this.backend.atBoundary)) s.end(msg.errorResponse('FATAL', fatal.sqlstate, fatal.message));
        else s.end();
        setTimeout(() => s.destroy(), 1500).unref();
      }
    }
    void this.live?.finish(reason);
  }

  private closeUpstream(up: Socket): void {
    up.removeAllListeners('data');
    if (up.writable) up.end(msg.terminate());
    setTimeout(() => up.destroy(), 1000).unref();
  }

  /** Ends a session that was relaying up to a message boundary; sends its FATAL if it got there. */
  private finishDrain(atBoundary: boolean): void {
    const fatal = this.draining;
    if (!fatal) return;
    this.draining = undefined;
    if (this.upstream) this.closeUpstream(this.upstream.socket);
    const s = this.sock;
    if (!s.destroyed) {
      if (atBoundary) s.end(msg.errorResponse('FATAL', fatal.sqlstate, fatal.message));
      else s.end();
      setTimeout(() => s.destroy(), 1500).unref();
    }
  }
}

/** A whole Terminate message (`X`, length 4) at the start of `chunk`. */
function isTerminate(chunk: Buffer): boolean {
  return chunk.length >= 5 && chunk[0] === FrontendCode.Terminate && chunk.readInt32BE(1) === 4;
}
