import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { AuditEntry } from '../audit.types.js';
import { formatRfc5424, frameOctetCounting, type SyslogOrigin } from './syslog-format.js';

/** A SIEM destination: `send` resolves once the batch is delivered, rejects if it may not be. */
export interface AuditSink {
  send(entries: AuditEntry[]): Promise<void>;
  close(): void;
}

const CONNECT_TIMEOUT_MS = 5000;
/**
 * TCP has no acknowledgement a sender can read: a batch counts as delivered once written and the
 * connection has stayed up this long after. A receiver that went away during the window makes
 * the batch go again on the next connection (duplicates carry the same `seq`).
 */
const SETTLE_MS = 200;

/** RFC 5424 over TCP, or TLS (RFC 5425) with `tls`, octet-counted; one connection kept open. */
export function syslogSink(opts: { host: string; port: number; tls: boolean; ca?: Buffer; origin: SyslogOrigin }): AuditSink {
  let sock: Socket | undefined;
  let broken: Error | undefined;
  const open = () => new Promise<Socket>((resolve, reject) => {
    const s = opts.tls
      ? tlsConnect({ host: opts.host, port: opts.port, servername: opts.host, ca: opts.ca })
      : netConnect({ host: opts.host, port: opts.port });
    const timer = setTimeout(() => s.destroy(new Error(`connect to ${opts.host}:${opts.port} timed out`)), CONNECT_TIMEOUT_MS);
    s.once(opts.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      s.off('error', reject);
      broken = undefined;
      const fail = (err?: Error) => {
        broken ??= err ?? new Error('the receiver closed the connection');
        if (sock === s) sock = undefined;
        s.destroy();
      };
      s.on('error', fail);
      s.on('end', () => fail());
      s.on('close', () => fail());
      s.on('data', () => undefined);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  return {
    async send(entries) {
      sock ??= await open();
      const s = sock;
      const frames = Buffer.concat(entries.map((e) => frameOctetCounting(formatRfc5424(e, opts.origin))));
      await new Promise<void>((resolve, reject) => s.write(frames, (err) => (err ? reject(err) : resolve())));
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      if (s.destroyed || sock !== s) throw broken ?? new Error('the receiver closed the connection');
    },
    close() {
      sock?.end();
      sock?.destroy();
      sock = undefined;
    },
  };
}

/**
 * HTTP(S) webhook: each batch is one POST of JSON lines (`application/x-ndjson`), signed with
 * `X-Pam-Signature: sha256=HEX` (HMAC-SHA256 of the body under the configured key) and
 * `X-Pam-Seq: FIRST-LAST`. Delivered on a 2xx answer; anything else is retried.
 */
export function webhookSink(opts: { url: string; key: Buffer; ca?: Buffer; timeoutMs?: number }): AuditSink {
  const url = new URL(opts.url);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return {
    send(entries) {
      const body = Buffer.from(entries.map((e) => JSON.stringify(e)).join('\n') + '\n', 'utf8');
      const signature = createHmac('sha256', opts.key).update(body).digest('hex');
      return new Promise<void>((resolve, reject) => {
        const req = request(url, {
          method: 'POST',
          ca: opts.ca,
          timeout: opts.timeoutMs ?? 10_000,
          headers: {
            'content-type': 'application/x-ndjson',
            'content-length': body.length,
            'x-pam-signature': `sha256=${signature}`,
            'x-pam-seq': `${entries[0]!.seq}-${entries.at(-1)!.seq}`,
          },
        }, (res) => {
          res.resume();
          res.once('end', () => {
            if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) resolve();
            else reject(new Error(`webhook answered HTTP ${res.statusCode}`));
          });
          res.once('error', reject);
        });
        req.once('timeout', () => req.destroy(new Error('webhook timed out')));
        req.once('error', reject);
        req.end(body);
      });
    },
    close() {},
  };
}
