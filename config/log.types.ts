/**
 * The logger every layer may take as an argument (pino's Logger fits it). It lives at the
 * bottom layer so the core and the adapters can log without importing the composition root.
 * Context goes in the object (session, user, target); never a token or a secret.
 */
export interface LogFn {
  (msg: string): void;
  (obj: Record<string, unknown>, msg?: string): void;
}

export interface Log {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Log;
}
