import type { Verdict } from '../../policies/policy.types.js';

/**
 * One recorded Postgres statement as a JSON line (recording format `jsonl`, read back by the
 * replay UI and `pam export`). Pure: the tracker gathers the facts, this writes them.
 */

const MAX_TEXT_PARAM = 1024;
const MAX_BINARY_PARAM = 256;

export type Copy = { direction: 'in' | 'out'; bytes: number };

/** How a held statement ended, written into its recorded verdict. */
export interface HoldMark {
  hold?: string;
  decision: 'approved' | 'denied' | 'expired' | 'canceled' | 'failed';
}

/** What is known about one client request once the server has answered it. */
export interface StatementFacts {
  k: 'query' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync' | 'fcall';
  start: number;
  sql?: string;
  statement?: string;
  portal?: string;
  params?: unknown[];
  rows: number;
  tags?: string[];
  error?: { sqlstate?: string; message: string };
  copy?: Copy;
  verdict?: Verdict & Partial<HoldMark>;
}

export function verdictOf(v: Verdict & Partial<HoldMark>): Record<string, unknown> {
  return { action: v.action, ...(v.rule ? { rule: v.rule } : {}), ...(v.message ? { message: v.message } : {}), ...(v.decision ? { hold: v.hold, decision: v.decision } : {}) };
}

let isoMs = 0;
let isoText = '';
/** ISO time, formatted once per millisecond (many statements share one under load). */
export function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
}

/** Rows from a command tag: the last number ("SELECT 5", "INSERT 0 5", "COPY 3"). */
function rowsOfTag(tag: string): number | undefined {
  const m = / (\d+)$/.exec(tag);
  return m ? Number(m[1]) : undefined;
}

export function formatParams(params: (Buffer | null)[], formats: number[], redact: boolean): unknown[] {
  const out: unknown[] = new Array(params.length);
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p === null) out[i] = null;
    else if (redact) out[i] = '[redacted]';
    else {
      const binary = (formats.length === 1 ? formats[0] : formats.length > i ? formats[i] : 0) === 1;
      if (binary) {
        out[i] = p.length > MAX_BINARY_PARAM
          ? { hex: p.subarray(0, MAX_BINARY_PARAM).toString('hex'), truncated: p.length }
          : { hex: p.toString('hex') };
      } else if (p.length > MAX_TEXT_PARAM) {
        out[i] = { text: p.toString('utf8', 0, MAX_TEXT_PARAM), truncated: p.length };
      } else {
        out[i] = p.toString('utf8');
      }
    }
  }
  return out;
}

/** Characters JSON.stringify would escape: controls, quote, backslash, any surrogate (a lone one is escaped). */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** JSON.stringify(s), without the call into the runtime for the common text that needs no escape. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** JSON.stringify(params) for what formatParams makes (strings, null, {hex}/{text, truncated} objects). */
function jsonParams(params: unknown[]): string {
  let out = '[';
  for (let i = 0; i < params.length; i++) {
    const v = params[i];
    if (i > 0) out += ',';
    out += typeof v === 'string' ? jsonString(v) : v === null || v === undefined ? 'null' : JSON.stringify(v);
  }
  return out + ']';
}

/**
 * String(ms) for a duration already rounded to the microsecond (ms ≥ 0), from integers: a
 * double's shortest-digits conversion is the dearest part of the line otherwise.
 */
export function formatMs(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!(us >= 0 && us < 2 ** 53)) return String(ms);
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  if (frac === 0) return `${whole}`;
  let digits = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  return `${whole}.${`${frac}`.padStart(digits, '0')}`;
}

/**
 * Built as a string, not an object for JSON.stringify: this runs once per statement on the
 * relay's hot path. Field order is fixed (t, type, protocol, sql, …).
 */
export function statementLine(p: StatementFacts, time: string, durationMs: number, extra?: string): string {
  let line = `{"t":"${time}","type":"statement","protocol":"${p.k === 'query' ? 'simple' : p.k === 'fcall' ? 'function-call' : 'extended'}","sql":${p.sql === undefined ? 'null' : jsonString(p.sql)}`;
  if (p.statement !== undefined) line += `,"statement":${jsonString(p.statement)}`;
  if (p.portal !== undefined) line += `,"portal":${jsonString(p.portal)}`;
  if (p.params) line += `,"params":${jsonParams(p.params)}`;
  line += `,"duration_ms":${formatMs(durationMs)}`;
  if (p.tags && p.tags.length > 0) {
    let rows = 0;
    let any = false;
    for (const t of p.tags) {
      const r = rowsOfTag(t);
      if (r !== undefined) { rows += r; any = true; }
    }
    line += p.tags.length === 1 ? `,"tag":${jsonString(p.tags[0]!)}` : `,"tags":${JSON.stringify(p.tags)}`;
    line += `,"rows":${any ? rows : p.rows}`;
  } else if (p.k === 'execute' || p.k === 'query') {
    line += `,"rows":${p.rows}`;
  }
  if (p.error) line += `,"error":${JSON.stringify(p.error)}`;
  if (p.copy) line += `,"copy":${JSON.stringify(p.copy)}`;
  // A plain allow is the common case under a policy: a constant, not an object to stringify.
  if (p.verdict) line += p.verdict.action === 'allow' && !p.verdict.rule && !p.verdict.message ? ',"verdict":{"action":"allow"}' : `,"verdict":${JSON.stringify(verdictOf(p.verdict))}`;
  if (extra) line += extra;
  return line + '}';
}
