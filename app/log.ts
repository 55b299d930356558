import { formatWithOptions } from 'node:util';
import { pino } from 'pino';
import type { LogConfig } from '../config/config.types.js';
import type { Log } from '../config/log.types.js';

export type { Log } from '../config/log.types.js';

/** Field names whose values never reach a log line, at any depth pino can address. */
const REDACT = ['token', 'password', 'secret', 'authorization', 'jwt', 'cookie', 'value']
  .flatMap((k) => [k, `*.${k}`]);
/** A JWT anywhere in a line (a message built from a client's input, say) is cut out too. */
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

interface Out { write(s: string): unknown; isTTY?: boolean }

const LEVEL_NAMES: Record<string, string> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO ', warn: 'WARN ', error: 'ERROR', fatal: 'FATAL' };

/** One JSON log line → `HH:MM:SS.mmm LEVEL msg key=value …` for a person at a terminal. */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { time, level, msg, ...rest } = o;
  const ctx = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`).join(' ');
  const t = typeof time === 'string' ? time.slice(11, 23) : '';
  return `${t} ${LEVEL_NAMES[String(level)] ?? String(level)} ${String(msg ?? '')}${ctx ? '  ' + ctx : ''}\n`;
}

/**
 * The process logger: one JSON object per line on `out` (stdout), with `time` (ISO), `level`
 * (name), `msg` and context fields; pretty lines when `format: pretty`, or by default when `out`
 * is a terminal. Errors are logged as `{ type, message, code }`, without stacks: one line per event.
 */
export function createLog(cfg: LogConfig | undefined, out: Out = process.stdout): Log & { level: string } {
  const pretty = cfg?.format ? cfg.format === 'pretty' : out.isTTY === true;
  const dest = { write: (s: string) => out.write(pretty ? prettyLine(s) : s) };
  return pino(
    {
      level: cfg?.level ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT, censor: '[redacted]' },
      serializers: {
        err: (e: unknown) => {
          if (!(e instanceof Error)) return { message: String(e) };
          const code = (e as NodeJS.ErrnoException).code;
          return { type: e.name, message: e.message, ...(code ? { code } : {}) };
        },
      },
      hooks: { streamWrite: (s) => s.replace(JWT, '[redacted-token]') },
    },
    dest,
  );
}

/**
 * Wraps a noisy error source (a store reconnecting, a sink retrying) so it logs one line when it
 * goes down, nothing while it stays down (whatever the retries say), and one line when `up()` is called.
 */
export function stateLog(log: Log, what: string): { down(err: unknown): void; up(): void; readonly isDown: boolean } {
  let down: string | undefined;
  return {
    down(err) {
      if (down !== undefined) return;
      down = err instanceof Error ? err.message : String(err);
      log.warn({ err: err instanceof Error ? err : new Error(down) }, `${what} unavailable`);
    },
    up() {
      if (down === undefined) return;
      down = undefined;
      log.info(`${what} available again`);
    },
    get isDown() {
      return down !== undefined;
    },
  };
}

/** Longest message kept from a console call; the rest is cut (a dump must not flood the log). */
const CONSOLE_MAX = 4000;

/**
 * While `pam serve` runs, console output from any module (a library, a catch-all `console.error`)
 * becomes a log line too, so stdout stays one JSON object per line: errors as `Name: message`
 * without their stack, any newlines escaped inside the line. Returns the restore function.
 */
export function captureConsole(log: Log): () => void {
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
  const text = (args: unknown[]) => {
    const s = formatWithOptions({ colors: false, depth: 4, breakLength: Infinity }, ...args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : a)));
    return s.length > CONSOLE_MAX ? `${s.slice(0, CONSOLE_MAX)}…` : s;
  };
  const from = { component: 'console' };
  console.log = (...a: unknown[]) => log.info(from, text(a));
  console.info = console.log;
  console.debug = (...a: unknown[]) => log.debug(from, text(a));
  console.warn = (...a: unknown[]) => log.warn(from, text(a));
  console.error = (...a: unknown[]) => log.error(from, text(a));
  return () => Object.assign(console, saved);
}
