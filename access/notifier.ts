/**
 * Notifications (`notify: [{ url, events, secret_file }]`): a JSON POST per event with a
 * Slack-compatible `text`, a link to the Inbox and, with a secret, an HMAC-SHA256 signature of
 * the exact body in `X-Pam-Signature: sha256=<hex>`. Events come from the audit log as it is
 * written (request, decision, held command, refused session), so no service needs to know.
 *
 * Never blocking: `notify` queues and returns; delivery retries with exponential back-off
 * (5xx, 429, network errors) and gives up after `maxAttempts`, logging why. The queue is
 * bounded; when full the oldest delivery is dropped, loudly.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AuditEntry } from '../recorder/audit.types.js';
import type { NotifyConfig, NotifyEvent } from '../config/config.types.js';

export const SIGNATURE_HEADER = 'x-pam-signature';

export interface Notification {
  event: NotifyEvent;
  /** Slack-compatible message text (incoming webhooks read `text`). */
  text: string;
  /** Where an approver acts: the UI's Inbox. */
  link?: string;
  time: string;
  /** The audit entry's fields that matter (no secrets are ever audited). */
  data: Record<string, unknown>;
}

/** Maps an audit entry to a notification event, or undefined when none applies. */
export function notificationFor(e: AuditEntry, inbox: string | undefined): Notification | undefined {
  const data = Object.fromEntries(Object.entries(e).filter(([k]) => !['prev', 'hash'].includes(k)));
  const base = { time: e.time, data, ...(inbox ? { link: inbox } : {}) };
  const at = (x: unknown, y: unknown) => `${String(x ?? '?')}@${String(y ?? '?')}`;
  const link = inbox ? ` <${inbox}|Open the Inbox>` : '';
  switch (e.type) {
    case 'request':
      return { ...base, event: 'request.created', text: `${e.actor} asks for ${at(e.login, e.target)} for ${e.duration}: "${e.reason}" (${e.request}).${link}` };
    case 'grant':
      return { ...base, event: 'request.decided', text: `${e.actor} approved ${e.user}'s request for ${at(e.login, e.target)} (${e.request}), until ${e.expires}.` };
    case 'deny':
      return { ...base, event: 'request.decided', text: `${e.actor} denied request ${e.request}${e.reason ? `: "${e.reason}"` : ''}.` };
    case 'policy.hold':
      return { ...base, event: 'hold.created', text: `${e.actor}'s command on ${at(e.login, e.target)} waits for review (rule ${e.rule}): ${String(e.text ?? '').slice(0, 300)}${link}` };
    case 'session.refused':
      return { ...base, event: 'session.denied', text: `A ${e.protocol ?? ''} session of ${e.actor ?? 'an unknown user'} to ${at(e.login, e.target)} was refused: ${e.why}` };
    default:
      return undefined;
  }
}

interface Delivery { target: NotifyConfig; body: string; event: NotifyEvent; attempt: number }

export interface NotifierOptions {
  targets: () => NotifyConfig[];
  /** `public_url`; the Inbox link is `${publicUrl}/#/inbox`. */
  publicUrl?: () => string | undefined;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxQueue?: number;
  timeoutMs?: number;
  onGiveUp?: (url: string, event: NotifyEvent, why: string) => void;
}

export class Notifier {
  private readonly queue: Delivery[] = [];
  private inflight = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
  private readonly secrets = new Map<string, Buffer>();

  constructor(private readonly opts: NotifierOptions) {}

  /** Audit subscriber: queues a notification for each matching entry. */
  readonly onAudit = (entry: AuditEntry): void => {
    const base = this.opts.publicUrl?.();
    const n = notificationFor(entry, base ? `${base}/#/inbox` : undefined);
    if (n) this.notify(n);
  };

  notify(n: Notification): void {
    if (this.closed) return;
    const body = JSON.stringify(n);
    for (const target of this.opts.targets()) {
      if (!target.events.includes(n.event)) continue;
      if (this.queue.length >= (this.opts.maxQueue ?? 1000)) {
        const dropped = this.queue.shift()!;
        this.opts.onGiveUp?.(dropped.target.url, dropped.event, 'queue full');
      }
      this.queue.push({ target, body, event: n.event, attempt: 0 });
    }
    this.pump();
  }

  /** HMAC key of a target, read once from its `secret_file` (trailing newline dropped). */
  private secretOf(t: NotifyConfig): Buffer | undefined {
    if (!t.secretFile) return undefined;
    let s = this.secrets.get(t.secretFile);
    if (!s) {
      s = Buffer.from(readFileSync(t.secretFile, 'utf8').replace(/\r?\n$/, ''));
      this.secrets.set(t.secretFile, s);
    }
    return s;
  }

  private pump(): void {
    while (this.inflight < 4 && this.queue.length > 0) {
      const d = this.queue.shift()!;
      this.inflight++;
      void this.send(d).finally(() => {
        this.inflight--;
        this.pump();
      });
    }
  }

  private async send(d: Delivery): Promise<void> {
    let why: string;
    try {
      const secret = this.secretOf(d.target);
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-pam-event': d.event, 'user-agent': 'pam-proxy' };
      if (secret) headers[SIGNATURE_HEADER] = `sha256=${createHmac('sha256', secret).update(d.body).digest('hex')}`;
      const res = await fetch(d.target.url, { method: 'POST', headers, body: d.body, redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) return;
      why = `HTTP ${res.status}`;
      if (res.status < 500 && res.status !== 429) return this.giveUp(d, why, d.attempt + 1);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
      why = cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (err as Error).message;
    }
    if (++d.attempt >= (this.opts.maxAttempts ?? 6)) return this.giveUp(d, why, d.attempt);
    const delay = (this.opts.baseDelayMs ?? 1000) * 2 ** (d.attempt - 1) * (0.75 + Math.random() / 2);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.closed) return;
      this.queue.unshift(d);
      this.pump();
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }

  private giveUp(d: Delivery, why: string, attempts: number): void {
    this.opts.onGiveUp?.(d.target.url, d.event, `${why} after ${attempts} attempt(s)`);
  }

  /** Pending deliveries (queued or waiting to retry), for tests and shutdown. */
  get pending(): number {
    return this.queue.length + this.inflight + this.timers.size;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
  }
}
