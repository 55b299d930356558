/** One audit entry as written: the chain fields are added by the log. */
export interface AuditEvent {
  type: string;
  /** Who did it (identity.user) when known. */
  actor?: string;
  [field: string]: unknown;
}

export interface AuditEntry extends AuditEvent {
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
