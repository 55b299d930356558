import type { AuditEvent } from './audit-events.js';

export type { AuditEvent } from './audit-events.js';

/**
 * One entry as read back from the log. Loose on purpose: the log holds entries written by
 * earlier versions, whose types and fields may differ from today's AuditEvent union, and each
 * is returned exactly as written (the hash chain covers its bytes).
 */
export interface AuditEntry {
  type: string;
  actor?: string;
  [field: string]: unknown;
  seq: number;
  time: string;
  prev: string;
  hash: string;
}

export interface AuditLog {
  /** Appends durably (written before it resolves). Never pass secrets or tokens. */
  append(event: AuditEvent): Promise<AuditEntry>;
  read(opts?: { sinceMs?: number }): Promise<AuditEntry[]>;
}
