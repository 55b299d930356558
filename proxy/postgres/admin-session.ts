/**
 * A small maintenance connection to a Postgres target for the proxy's own work (rotation,
 * discovery): the broker's upstream login (TLS per target, SCRAM), then simple-protocol
 * queries whose rows come back as text. Not used for user sessions.
 */
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage, DataRowMessage, DatabaseError } from 'pg-protocol/dist/messages.js';
import type { PostgresTarget } from '../../config/config.types.js';
import { connectUpstream, type UpstreamConnection } from './upstream.js';

/** The server refused a statement; `sqlstate` is its code. */
export class AdminQueryError extends Error {
  constructor(message: string, public readonly sqlstate?: string) {
    super(message);
    this.name = 'AdminQueryError';
  }
}

export interface AdminSession {
  /** Runs one simple query; resolves to its rows (text values, null for NULL). */
  query(sql: string): Promise<(string | null)[][]>;
  close(): void;
}

/** Query message: 'Q' | int32 length | sql \0 (https://www.postgresql.org/docs/current/protocol-message-formats.html). */
function queryMessage(sql: string): Buffer {
  const body = Buffer.from(sql + '\0', 'utf8');
  const head = Buffer.alloc(5);
  head[0] = 0x51;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

export async function openAdminSession(target: PostgresTarget, login: string, password: Buffer): Promise<AdminSession> {
  const conn: UpstreamConnection = await connectUpstream({ target, login, password, params: { application_name: 'pam-proxy maintenance' } });
  const parser = new Parser();
  let pending: { rows: (string | null)[][]; error?: AdminQueryError; done: (e?: Error) => void } | undefined;
  let broken: Error | undefined;
  const onMessage = (m: BackendMessage) => {
    if (!pending) return;
    if (m.name === 'dataRow') pending.rows.push((m as DataRowMessage).fields);
    else if (m.name === 'error') {
      const e = m as DatabaseError;
      pending.error ??= new AdminQueryError(e.message, e.code);
    } else if (m.name === 'readyForQuery') {
      const p = pending;
      pending = undefined;
      p.done(p.error);
    }
  };
  const fail = (e: Error) => {
    broken ??= e;
    const p = pending;
    pending = undefined;
    p?.done(e);
  };
  conn.socket.on('data', (d: Buffer) => parser.parse(d, onMessage));
  conn.socket.on('error', (e) => fail(e));
  conn.socket.on('close', () => fail(new AdminQueryError('the server closed the connection')));
  if (conn.leftover.length) parser.parse(conn.leftover, onMessage);
  return {
    query(sql) {
      if (broken) return Promise.reject(broken);
      if (pending) return Promise.reject(new Error('one query at a time'));
      return new Promise((resolve, reject) => {
        const rows: (string | null)[][] = [];
        pending = { rows, done: (e) => (e ? reject(e) : resolve(rows)) };
        conn.socket.write(queryMessage(sql));
      });
    },
    close() {
      conn.socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
    },
  };
}

/** A quoted SQL identifier: "name" with inner quotes doubled. */
export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
