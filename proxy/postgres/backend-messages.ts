/**
 * The few backend messages the proxy writes itself (auth, errors, keys), and the frontend
 * messages it writes upstream during login. Relayed traffic is never re-serialized.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

function message(code: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = code;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s.replace(/\0/g, '')}\0`, 'utf8');
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n | 0, 0);
  return b;
}

export type Severity = 'ERROR' | 'FATAL';

/** ErrorResponse ('E'): S/V severity, C SQLSTATE, M message, optional D detail and H hint. */
export function errorResponse(severity: Severity, sqlstate: string, msg: string, extra?: { detail?: string; hint?: string }): Buffer {
  const parts = [
    Buffer.from('S'), cstr(severity),
    Buffer.from('V'), cstr(severity),
    Buffer.from('C'), cstr(sqlstate),
    Buffer.from('M'), cstr(msg),
  ];
  if (extra?.detail) parts.push(Buffer.from('D'), cstr(extra.detail));
  if (extra?.hint) parts.push(Buffer.from('H'), cstr(extra.hint));
  parts.push(Buffer.from([0]));
  return message(0x45, Buffer.concat(parts));
}

/** NoticeResponse ('N') with severity NOTICE. */
export function noticeResponse(sqlstate: string, msg: string): Buffer {
  return message(0x4e, Buffer.concat([Buffer.from('S'), cstr('NOTICE'), Buffer.from('V'), cstr('NOTICE'), Buffer.from('C'), cstr(sqlstate), Buffer.from('M'), cstr(msg), Buffer.from([0])]));
}

export const authenticationOk = (): Buffer => message(0x52, int32(0));
export const authenticationCleartextPassword = (): Buffer => message(0x52, int32(3));

export function backendKeyData(pid: number, secret: number): Buffer {
  return message(0x4b, Buffer.concat([int32(pid), int32(secret)]));
}

export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return message(0x5a, Buffer.from(status));
}

export function parameterStatus(name: string, value: string): Buffer {
  return message(0x53, Buffer.concat([cstr(name), cstr(value)]));
}

/** What a client gets once login completes: AuthenticationOk, the server's parameters, BackendKeyData, ReadyForQuery. */
export function loginComplete(parameters: [string, string][], pid: number, secret: number): Buffer {
  const out: Buffer[] = [authenticationOk()];
  for (const [k, v] of parameters) out.push(parameterStatus(k, v));
  out.push(backendKeyData(pid, secret), readyForQuery('I'));
  return Buffer.concat(out);
}

// ---- frontend messages the proxy writes upstream during login and cancel ----

export function sslRequest(): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(80877103, 4);
  return b;
}

export function startupMessage(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [int32(196608)];
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  return Buffer.concat([int32(body.length + 4), body]);
}

export function cancelRequest(pid: number, secret: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(80877102, 4);
  b.writeInt32BE(pid | 0, 8);
  b.writeInt32BE(secret | 0, 12);
  return b;
}

/** PasswordMessage ('p') carrying a NUL-terminated password. */
export function passwordMessage(password: string | Buffer): Buffer {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  return message(0x70, Buffer.concat([pw, Buffer.from([0])]));
}

/** SASLInitialResponse: String mechanism, Int32 len, Byte × len. */
export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  return message(0x70, Buffer.concat([cstr(mechanism), int32(data.length), data]));
}

export function saslResponse(data: Buffer): Buffer {
  return message(0x70, data);
}

/** Query ('Q'). */
export function query(sql: string): Buffer {
  return message(0x51, cstr(sql));
}

/** Parse ('P') with no parameter types. */
export function parse(name: string, sql: string): Buffer {
  return message(0x50, Buffer.concat([cstr(name), cstr(sql), Buffer.from([0, 0])]));
}

export const terminate = (): Buffer => message(0x58, Buffer.alloc(0));
