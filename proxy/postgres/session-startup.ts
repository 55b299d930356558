/**
 * The pure checks of a Postgres session's startup handshake: which StartupMessages are served,
 * the parameters upstream gets (pinned so the server reads SQL as the policy's parser does,
 * parse-pins.ts), and the password message that carries the IAM token.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
import type { Authorized } from '../../access/access.types.js';
import type { PostgresTarget } from '../../config/config.types.js';
import type { AuditLog } from '../../recorder/audit.types.js';
import { auditEvent } from '../../recorder/audit-events.js';
import { FrontendCode, ProtocolError, type Frame } from './frontend-codec.js';
import { pinStartup } from './parse-pins.js';
import { SessionFatal } from './session-errors.js';

export interface StartupChecks {
  /** The connection is already TLS. */
  tls: boolean;
  /** Whether a cleartext token may arrive over plain TCP on this connection. */
  plaintextOk: boolean;
  client: string;
  audit: AuditLog;
}

/**
 * Accepts a StartupMessage's parameters or throws the SessionFatal the client is told; returns
 * the startup parameters upstream gets. A refused parse pin is audited.
 */
export function acceptStartup(params: Record<string, string>, checks: StartupChecks): Record<string, string> {
  if (!params.user) throw new SessionFatal('28000', 'no PostgreSQL user name specified in startup packet');
  const upstream = pinnedParams(params, checks);
  if (params.replication && params.replication !== 'false') throw new SessionFatal('28000', 'replication connections are not available through the proxy');
  if (!checks.tls && !checks.plaintextOk) {
    throw new SessionFatal('28000', 'this proxy accepts IAM tokens only over TLS: connect with sslmode=require');
  }
  return upstream;
}

/** The startup parameters upstream gets: the server must read SQL as the proxy's parser does (parse-pins.ts). */
function pinnedParams(params: Record<string, string>, checks: StartupChecks): Record<string, string> {
  const pin = pinStartup(params);
  if ('params' in pin) return pin.params;
  void checks.audit.append(auditEvent('session.refused', { protocol: 'postgres', code: 'parse-pin', why: pin.refusal.message, login: params.user, client: checks.client })).catch(() => undefined);
  throw new SessionFatal(pin.refusal.sqlstate, pin.refusal.message);
}

/**
 * The IAM token from the password message, or undefined for a Terminate (`client.connect();
 * client.end()` sends it before any password: a clean close, as PostgreSQL does).
 */
export function readToken(frame: Frame): string | undefined {
  if (frame.code === FrontendCode.Terminate) return undefined;
  if (frame.code !== FrontendCode.Password) throw new ProtocolError('expected a password message (the IAM token)');
  const nul = frame.body.indexOf(0);
  if (nul !== frame.body.length - 1) throw new ProtocolError('malformed password message');
  return frame.body.toString('utf8', 0, nul);
}

/** A whole Terminate message (`X`, length 4) at the start of `chunk`. */
export function isTerminate(chunk: Buffer): boolean {
  return chunk.length >= 5 && chunk[0] === FrontendCode.Terminate && chunk.readInt32BE(1) === 4;
}

/** What the first line of a session's query log says about it (who, which login and target, from where). */
export function recordingStart(auth: Authorized, login: string, client: string, tls: boolean, options: string | undefined): Record<string, unknown> {
  const { identity } = auth;
  const target = auth.target as PostgresTarget;
  return {
    user: identity.user, subject: identity.subject, email: identity.email, login, target: target.name, database: target.database,
    client, grant: auth.grant.id, tls, ...(options !== undefined ? { options } : {}),
  };
}
