/**
 * How a Postgres session's sockets close: the client with a FATAL ErrorResponse when it can go in
 * at a message boundary, the upstream with a Terminate; and which FATAL an error becomes.
 */
import type { Socket } from 'node:net';
import * as msg from './backend-messages.js';
import { ProtocolError } from './frontend-codec.js';
import { SessionFatal } from './session-errors.js';

/** What the client is told as the session ends. */
export interface Fatal {
  sqlstate: string;
  message: string;
}

/** The audited reason and the client's FATAL for an error that ends a session. */
export function endingOf(err: unknown): { reason: string; fatal: Fatal } {
  if (err instanceof SessionFatal) return { reason: err.message, fatal: { sqlstate: err.sqlstate, message: err.message } };
  if (err instanceof ProtocolError) return { reason: `protocol error: ${err.message}`, fatal: { sqlstate: err.sqlstate, message: err.message } };
  // Anything else is ours: the client gets a generic message, never internals; the operator gets the error.
  console.error('pam postgres: session error:', err);
  return { reason: `internal error: ${(err as Error)?.message ?? err}`, fatal: { sqlstate: 'XX000', message: 'internal proxy error; the session was closed' } };
}

/** Ends the client connection, with `fatal` first if given; destroyed after 1.5 s at most. */
export function endClient(s: Socket, fatal: Fatal | undefined): void {
  if (s.destroyed) return;
  if (fatal) s.end(msg.errorResponse('FATAL', fatal.sqlstate, fatal.message));
  else s.end();
  setTimeout(() => s.destroy(), 1500).unref();
}

/** Ends the upstream connection with a Terminate; nothing more it sends is relayed. */
export function closeUpstream(up: Socket): void {
  up.removeAllListeners('data');
  if (up.writable) up.end(msg.terminate());
  setTimeout(() => up.destroy(), 1000).unref();
}
