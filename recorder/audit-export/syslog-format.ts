import type { AuditEntry } from '../audit.types.js';

/**
 * RFC 5424 syslog messages for audit entries, framed for TCP by octet counting (RFC 6587
 * §3.4.1, the framing RFC 5425 requires over TLS). Pure: no sockets.
 *
 *   SYSLOG-MSG = <PRI>1 SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP BOM MSG
 *   frame      = MSG-LEN SP SYSLOG-MSG
 *
 * - PRI: facility 13 ("log audit") × 8 + severity: 4 (warning) for refusals, denials and lost
 *   events, 5 (notice) for session and grant changes, 6 (informational) for the rest.
 * - MSGID: the entry's type; SD: `[pam@32473 seq="…" hash="…"]` (32473 is the example
 *   enterprise number RFC 5424 uses for private SD-IDs), so a SIEM can spot gaps and check the chain.
 * - MSG: the entry as one JSON object, UTF-8 after a BOM (RFC 5424 §6.4).
 */

const FACILITY_LOG_AUDIT = 13;
const BOM = '\uFEFF';

export function severityOf(type: string): number {
  if (/\.refused$|^policy\.deny$|^token\.rejected$|^session\.failed$|^audit_export\.overflow$|^proxy\.stopped$/.test(type)) return 4;
  if (/^(session|grant|revoke|approve|deny|request|secret|policy|config)\b/.test(type)) return 5;
  return 6;
}

/** A header field: printable US-ASCII without spaces (RFC 5424 PRINTUSASCII), cut to `max`, "-" if empty. */
export function headerField(value: string, max: number): string {
  const v = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return v || '-';
}

/** SD-PARAM value escaping (RFC 5424 §6.3.3): `"`, `\` and `]` take a backslash. */
const sdValue = (v: string) => v.replace(/["\\\]]/g, (c) => `\\${c}`);

export interface SyslogOrigin { hostname: string; appName: string; procId: string }

export function formatRfc5424(entry: AuditEntry, origin: SyslogOrigin): string {
  const pri = FACILITY_LOG_AUDIT * 8 + severityOf(entry.type);
  const sd = `[pam@32473 seq="${entry.seq}" hash="${sdValue(String(entry.hash))}"]`;
  return `<${pri}>1 ${entry.time} ${headerField(origin.hostname, 255)} ${headerField(origin.appName, 48)} ${headerField(origin.procId, 128)} ${headerField(entry.type, 32)} ${sd} ${BOM}${JSON.stringify(entry)}`;
}

/** Octet-counting frame: the byte length of the message, a space, the message. */
export function frameOctetCounting(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

/**
 * Splits a byte stream of octet-counted frames (a receiver's view; the tests use it). Returns
 * the complete messages and the bytes of an incomplete frame left over. Throws on a bad length.
 */
export function parseOctetCounted(buf: Buffer): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp === -1 || sp - off > 10) {
      if (buf.length - off > 10) throw new Error('syslog frame: no length');
      break;
    }
    const len = Number(buf.toString('ascii', off, sp));
    if (!Number.isInteger(len) || len <= 0 || !/^[1-9]\d*$/.test(buf.toString('ascii', off, sp))) throw new Error('syslog frame: bad length');
    if (sp + 1 + len > buf.length) break;
    messages.push(buf.toString('utf8', sp + 1, sp + 1 + len));
    off = sp + 1 + len;
  }
  return { messages, rest: buf.subarray(off) };
}
