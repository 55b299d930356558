import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import type { PostgresTarget } from '../../config/config.types.js';
import * as msg from './backend-messages.js';
import { ReusedReads } from './reused-reads.js';
import { md5Password, ScramClient } from './scram.js';

/**
 * Opening the target connection: TLS per target config, startup with the vaulted login, then
 * SCRAM-SHA-256, MD5 or cleartext. Resolves once the server is ReadyForQuery, with what the
 * client must be told (ParameterStatus) and the server's cancel key.
 */

/** The target refused or broke the login. `sqlstate` is the server's when it sent one. */
export class UpstreamError extends Error {
  constructor(message: string, public readonly sqlstate?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamConnection {
  socket: Socket | TLSSocket;
  parameters: [string, string][];
  processId: number;
  secretKey: number;
  /** Bytes the server sent after ReadyForQuery (asynchronous notices); relay them first. */
  leftover: Buffer;
  tls: boolean;
  /** Set on a plain TCP connection: its reads go into one reused buffer (reused-reads.ts). */
  reads?: ReusedReads;
}

export interface UpstreamOptions {
  target: PostgresTarget;
  login: string;
  password: Buffer;
  /** Client startup parameters to pass on (user and database are replaced). */
  params: Record<string, string>;
  timeoutMs?: number;
}

/** Startup parameters the proxy forwards; the rest (replication, user, database) it sets or drops. */
const FORWARD = new Set(['application_name', 'client_encoding', 'standard_conforming_strings', 'DateStyle', 'TimeZone', 'extra_float_digits', 'options', 'search_path', 'IntervalStyle', 'datestyle', 'timezone', 'intervalstyle', 'geqo', 'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout']);

/** The client's startup parameters the target gets (user and database are set apart). */
export function forwardedParams(client: Record<string, string>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(client)) if (FORWARD.has(k)) params[k] = v;
  return params;
}

/** Reads whole messages from a socket during login. */
class LoginReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly onData = (d: Buffer) => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    this.wake();
  };
  private readonly onEnd = () => this.fail(new UpstreamError('the server closed the connection during login'));
  private readonly onError = (e: Error) => this.fail(new UpstreamError(`cannot reach the server: ${e.message}`, undefined, { cause: e }));

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  fail(e: Error): void {
    this.failure ??= e;
    this.wake();
  }

  async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => (this.waiting = r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async message(): Promise<{ code: number; raw: Buffer }> {
    const hdr = await this.bytes(5);
    const len = hdr.readInt32BE(1);
    if (len < 4 || len > 1 << 20) throw new UpstreamError(`invalid message length ${len} from server during login`);
    const body = await this.bytes(len - 4);
    return { code: hdr[0]!, raw: Buffer.concat([hdr, body]) };
  }

  /** Stops reading; returns unread bytes. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}

function parseOne(parser: Parser, raw: Buffer): BackendMessage {
  let out: BackendMessage | undefined;
  parser.parse(raw, (m) => (out = m));
  if (!out) throw new UpstreamError('unparseable message from server during login');
  return out;
}

export async function connectUpstream(opts: UpstreamOptions): Promise<UpstreamConnection> {
  const { target } = opts;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // Once TLS is on it reads the TCP socket itself (the reused buffer is then unused): plain TCP only.
  let reads: ReusedReads | undefined = new ReusedReads();
  let socket: Socket | TLSSocket = netConnect({ host: target.host, port: target.port, noDelay: true, onread: reads.onread });
  reads.attach(socket);
  const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  let reader = new LoginReader(socket);
  let usingTls = false;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    if (target.tls !== 'disable') {
      socket.write(msg.sslRequest());
      const answer = (await reader.bytes(1))[0];
      if (answer === 0x53) {
        if (reader.detach().length) throw new UpstreamError('server sent unencrypted bytes after accepting TLS');
        const verify = target.tls === 'verify-full';
        const tlsSocket = tlsConnect({
          socket,
          host: target.host,
          servername: /^[\d.]+$|:/.test(target.host) ? undefined : target.host,
          ca: target.caFile ? readFileSync(target.caFile) : undefined,
          rejectUnauthorized: verify,
        });
        await new Promise<void>((resolve, reject) => {
          tlsSocket.once('secureConnect', resolve);
          tlsSocket.once('error', reject);
        });
        socket = tlsSocket;
        reads = undefined;
        reader = new LoginReader(socket);
        usingTls = true;
      } else if (answer === 0x4e) {
        if (target.tls !== 'prefer') throw new UpstreamError(`target "${target.name}" requires TLS but the server does not offer it`);
      } else {
        throw new UpstreamError('unexpected answer to SSLRequest');
      }
    }
    const params = forwardedParams(opts.params);
    params.user = opts.login;
    params.database = target.database;
    socket.write(msg.startupMessage(params));

    const parser = new Parser();
    const parameters: [string, string][] = [];
    let processId = 0;
    let secretKey = 0;
    let scram: ScramClient | undefined;
    for (;;) {
      const { raw } = await reader.message();
      const m = parseOne(parser, raw) as BackendMessage & Record<string, any>;
      switch (m.name) {
        case 'authenticationCleartextPassword':
          socket.write(msg.passwordMessage(opts.password));
          break;
        case 'authenticationMD5Password':
          socket.write(msg.passwordMessage(md5Password(opts.login, opts.password, Buffer.from(m.salt))));
          break;
        case 'authenticationSASL':
          if (!(m.mechanisms as string[]).includes('SCRAM-SHA-256')) throw new UpstreamError(`server offers no supported SASL mechanism (${m.mechanisms})`);
          scram = new ScramClient(opts.password);
          socket.write(msg.saslInitialResponse('SCRAM-SHA-256', scram.first()));
          break;
        case 'authenticationSASLContinue':
          if (!scram) throw new UpstreamError('SASL continue without a SASL start');
          socket.write(msg.saslResponse(await scram.final(m.data)));
          break;
        case 'authenticationSASLFinal':
          if (!scram) throw new UpstreamError('SASL final without a SASL start');
          scram.verify(m.data);
          break;
        case 'authenticationOk':
          if (raw.readInt32BE(5) !== 0) throw new UpstreamError(`unsupported authentication method ${raw.readInt32BE(5)} requested by the server`);
          break;
        case 'parameterStatus':
          parameters.push([m.parameterName, m.parameterValue]);
          break;
        case 'backendKeyData':
          processId = m.processID;
          secretKey = m.secretKey;
          break;
        case 'notice':
          break;
        case 'error':
          throw new UpstreamError(`target refused the login: ${m.message}`, m.code);
        case 'readyForQuery': {
          clearTimeout(timer);
          const leftover = reader.detach();
          return { socket, parameters, processId, secretKey, leftover, tls: usingTls, ...(reads ? { reads } : {}) };
        }
        default:
          throw new UpstreamError(`unexpected ${m.name} from server during login`);
      }
    }
  } catch (err) {
    clearTimeout(timer);
    reader.detach();
    socket.destroy();
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError(`cannot open the target connection: ${(err as Error).message}`, undefined, { cause: err });
  }
}

/** Sends a CancelRequest for (pid, secret) to the target; fire and forget, bounded by a timeout. */
export function sendCancel(target: PostgresTarget, processId: number, secretKey: number): void {
  const s = netConnect({ host: target.host, port: target.port });
  s.setTimeout(5000, () => s.destroy());
  s.on('error', () => s.destroy());
  s.on('connect', () => s.end(msg.cancelRequest(processId, secretKey)));
}
