import { performance } from 'node:perf_hooks';
import { mentionsPassword, redactSqlSecrets } from '../../policies/sql-secrets.js';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage, DatabaseError } from 'pg-protocol/dist/messages.js';
import type { Verdict } from '../../policies/policy.types.js';
import type { FrontendMessage } from './frontend-codec.js';
import * as msg from './backend-messages.js';
import { mayChangeSettings, readsDifferently } from './setting-barrier.js';
import { formatParams, isoNow, statementLine, verdictOf, type Copy, type HoldMark, type StatementFacts } from './statement-line.js';

/**
 * Pairs what the client sent with what the server answered, in protocol order, to record one
 * event per statement (text, parameters, duration, tag, rows, SQLSTATE, COPY bytes) and to
 * enforce policy verdicts without desynchronising either side.
 *
 * A denied statement is never forwarded. In its place the server gets a statement that fails
 * to parse, so the server itself produces the error at the right place in the stream, aborts
 * an open transaction block, skips the rest of an extended batch until Sync and reports the
 * true transaction status; the tracker swaps that error for the proxy's 42501 ErrorResponse.
 */

/** Text the server receives instead of a denied statement: a syntax error, so nothing runs. */
export const DENIED_PLACEHOLDER = 'DENIED BY PROXY POLICY';

export interface TrackerOptions {
  redactParameters: boolean;
  /** Policy check for one statement text; undefined when no policy is configured. */
  check?: (sql: string) => Verdict;
  /**
   * Verdict for a fastpath FunctionCall (no SQL text to judge). Undefined: refused whenever
   * `check` is set (fail closed).
   */
  checkFastpath?: () => Verdict;
  /** `review` verdicts can wait for an approver (onFrontend returns a ReviewRequest); else they act as deny. */
  canHold?: boolean;
  /** One recording line (a JSON object, no newline) per statement. */
  record: (jsonLine: string) => void;
  /** Called once per recorded statement with the policy action taken (metrics). */
  onStatement?: (action: string) => void;
}

/**
 * A statement a `review` verdict holds. The session relays nothing of it (or after it) until an
 * approver decides, then sends the original bytes (`approve`) or what `refuse` returns.
 */
export interface ReviewRequest {
  readonly kind: 'review';
  readonly sql: string;
  readonly verdict: Verdict;
  approve(hold: string): void;
  /** Marks it refused; returns the bytes the server gets instead (fails to parse, so nothing runs). */
  refuse(mark: HoldMark, message: string, sqlstate?: string): Buffer;
}

/** A client request waiting for the server's answer; what is recorded about it is StatementFacts. */
interface Pending extends StatementFacts {
  denied?: boolean;
  /** SQLSTATE of the proxy's error for a denied statement (default 42501). */
  deniedState?: string;
}

interface Portal { statement: string; sql: string | undefined; params: unknown[] | undefined }

export class StatementTracker {
  private readonly queue: Pending[] = [];
  private head = 0;
  private readonly statements = new Map<string, string>();
  /** Prepared statements whose text names PASSWORD: their Bind parameters are redacted (sql-secrets.ts). */
  private readonly withPassword = new Set<string>();
  private readonly portals = new Map<string, Portal>();
  private readonly parser = new Parser();
  private copyIn: Copy | undefined;
  /** Transaction status from the last ReadyForQuery: I idle, T in a block, E failed block. */
  txStatus: 'I' | 'T' | 'E' = 'I';
  /** Statements denied by policy so far. */
  denials = 0;
  /**
   * Set by `onFrontend` when the message just noted may change a pinned setting and ends what
   * the server reads before reporting it (a Query, or the Sync of a batch that executed one):
   * nothing after it may go upstream until every answer is in (`outstanding === 0`). The
   * session reads and clears it (setting-barrier.ts).
   */
  barrier = false;
  /** Prepared statements and portals that may change a setting (setting-barrier.ts). */
  private readonly settingStatements = new Set<string>();
  private readonly settingPortals = new Set<string>();
  /** An Execute of such a portal was sent and its batch's Sync was not: a Parse or Query now is refused. */
  private batchMayChange = false;
  /** A simple-Query COPY FROM STDIN that may change a setting: the wait starts at its CopyDone/CopyFail. */
  private copyMayChange = false;

  constructor(private readonly opts: TrackerOptions) {}

  private push(p: Pending): void {
    this.queue.push(p);
  }

  private get current(): Pending | undefined {
    return this.queue[this.head];
  }

  private shift(): void {
    this.head++;
    // Keep the array from growing without bound under long pipelines.
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Number of client requests still waiting for the server. */
  get outstanding(): number {
    return this.queue.length - this.head;
  }

  private decide(sql: string): Verdict | undefined {
    if (!this.opts.check) return undefined;
    return this.opts.check(sql);
  }

  /** Writes a marker line into the recording (hold created / decided). */
  mark(fields: Record<string, unknown>): void {
    this.opts.record(JSON.stringify({ t: isoNow(), ...fields }));
  }

  private review(p: Pending, sql: string, v: Verdict, refused: () => Buffer): ReviewRequest {
    return {
      kind: 'review',
      sql,
      verdict: v,
      approve: (hold) => {
        p.verdict = { ...v, hold, decision: 'approved' };
      },
      refuse: (mark, message, sqlstate) => {
        p.verdict = { ...v, ...mark, message };
        p.denied = true;
        if (sqlstate) p.deniedState = sqlstate;
        this.denials++;
        return refused();
      },
    };
  }

  /**
   * Notes a client message about to be forwarded. Returns bytes to send upstream instead of
   * the message (a denied statement), a ReviewRequest (the session holds the message until an
   * approver decides), or undefined to forward it as is.
   */
  onFrontend(m: FrontendMessage): Buffer | ReviewRequest | undefined {
    const now = performance.now();
    switch (m.type) {
      case 'query': {
        if (this.batchMayChange && readsDifferently(m.sql)) return this.refuseInBatch({ k: 'query', start: now, sql: redactSqlSecrets(m.sql), rows: 0, tags: [] }, msg.query(DENIED_PLACEHOLDER));
        const v = this.decide(m.sql);
        // What rests (recording, hold, audit) never holds a password literal; upstream gets m.sql.
        const shown = redactSqlSecrets(m.sql);
        const p: Pending = { k: 'query', start: now, sql: shown, rows: 0, tags: [] };
        if (v) p.verdict = v;
        this.push(p);
        // COPY … FROM STDIN: its data follows the Query; the wait starts after CopyDone/CopyFail.
        if (this.opts.check && mayChangeSettings(m.sql)) {
          if (/^\s*copy\b[\s\S]*\bfrom\s+stdin\b/i.test(m.sql)) this.copyMayChange = true;
          else this.barrier = true;
        }
        if (v && v.action === 'review' && this.opts.canHold) return this.review(p, shown, v, () => msg.query(DENIED_PLACEHOLDER));
        if (v && (v.action === 'deny' || v.action === 'review')) {
          p.denied = true;
          this.denials++;
          return msg.query(DENIED_PLACEHOLDER);
        }
        return undefined;
      }
      case 'parse': {
        if (this.batchMayChange && readsDifferently(m.sql)) return this.refuseInBatch({ k: 'parse', start: now, sql: redactSqlSecrets(m.sql), statement: m.name, rows: 0 }, msg.parse(m.name, DENIED_PLACEHOLDER));
        const v = this.decide(m.sql);
        const shown = redactSqlSecrets(m.sql);
        if (this.opts.check && mayChangeSettings(m.sql) && v?.action !== 'deny') this.settingStatements.add(m.name);
        else this.settingStatements.delete(m.name);
        this.statements.set(m.name, shown);
        if (mentionsPassword(m.sql)) this.withPassword.add(m.name);
        else this.withPassword.delete(m.name);
        const p: Pending = { k: 'parse', start: now, sql: shown, statement: m.name, rows: 0 };
        if (v) p.verdict = v;
        this.push(p);
        if (v && v.action === 'review' && this.opts.canHold) {
          return this.review(p, shown, v, () => {
            this.statements.delete(m.name);
            return msg.parse(m.name, DENIED_PLACEHOLDER);
          });
        }
        if (v && (v.action === 'deny' || v.action === 'review')) {
          p.denied = true;
          this.denials++;
          this.statements.delete(m.name);
          return msg.parse(m.name, DENIED_PLACEHOLDER);
        }
        if (v && v.action === 'alert') this.opts.record(JSON.stringify({ t: isoNow(), type: 'alert', sql: shown, statement: m.name, verdict: verdictOf(v) }));
        return undefined;
      }
      case 'bind':
        if (this.settingStatements.has(m.statement)) this.settingPortals.add(m.portal);
        else this.settingPortals.delete(m.portal);
        this.portals.set(m.portal, {
          statement: m.statement,
          sql: this.statements.get(m.statement),
          params: m.params.length ? formatParams(m.params, m.paramFormats, this.opts.redactParameters || this.withPassword.has(m.statement)) : undefined,
        });
        this.push({ k: 'bind', start: now, rows: 0 });
        return undefined;
      case 'describe':
        this.push({ k: 'describe', start: now, rows: 0 });
        return undefined;
      case 'execute': {
        if (this.settingPortals.has(m.portal)) this.batchMayChange = true;
        const portal = this.portals.get(m.portal);
        this.push({ k: 'execute', start: now, sql: portal?.sql, statement: portal?.statement, portal: m.portal, params: portal?.params, rows: 0 });
        return undefined;
      }
      case 'close':
        if (m.kind === 'S') this.statements.delete(m.name);
        else this.portals.delete(m.name);
        this.push({ k: 'close', start: now, rows: 0 });
        return undefined;
      case 'sync':
        if (this.batchMayChange) this.barrier = true;
        this.batchMayChange = false;
        this.push({ k: 'sync', start: now, rows: 0 });
        return undefined;
      case 'function-call': {
        const p: Pending = { k: 'fcall', start: now, sql: `-- function call oid ${m.oid}`, rows: 0, params: formatParams(m.args, m.argFormats, this.opts.redactParameters) };
        this.push(p);
        // The fastpath names a function by OID, with no SQL text a policy could judge: it is
        // refused where the rules could not judge it (a `functions` rule or allow-list mode
        // applies, see policy-seam.ts), and always when no fastpath check is given (fail closed).
        const fv = this.opts.checkFastpath ? this.opts.checkFastpath() : this.opts.check ? { action: 'deny' as const } : undefined;
        if (fv && fv.action !== 'allow') p.verdict = fv;
        if (fv && fv.action !== 'allow' && fv.action !== 'alert') {
          p.verdict = { ...fv, action: 'deny', message: fv.message ?? 'fastpath function calls are refused while SQL policy is on; call the function with SELECT' };
          p.denied = true;
          this.denials++;
          return msg.query(DENIED_PLACEHOLDER);
        }
        return undefined;
      }
      case 'copy-data':
        if (this.copyIn) this.copyIn.bytes += m.bytes;
        return undefined;
      case 'copy-done':
      case 'copy-fail':
        if (this.copyMayChange) this.barrier = true;
        this.copyMayChange = false;
        return undefined;
      default:
        return undefined;
    }
  }

  private parseHeld(raw: Buffer): BackendMessage {
    let out: BackendMessage | undefined;
    this.parser.parse(raw, (x) => (out = x));
    return out!;
  }

  /** Writes one statement line (format in statement-line.ts). */
  private emit(p: Pending, extra?: string): void {
    this.opts.onStatement?.(p.verdict?.action ?? 'allow');
    this.opts.record(statementLine(p, isoNow(), Math.round((performance.now() - p.start) * 1000) / 1000, extra));
  }

  /**
   * A Parse or Query after an Execute that may change a pinned setting, in the same batch, whose
   * text another setting would read differently (a backslash or a non-ASCII byte): the server
   * would read it with whatever that Execute set, before the proxy can see it. Refused
   * (0A000); the server gets a statement that fails to parse and skips to the Sync.
   */
  private refuseInBatch(p: Pending, placeholder: Buffer): Buffer {
    p.verdict = { action: 'deny', rule: 'parse-pin-pipeline', message: 'statement sent behind one that may change standard_conforming_strings or client_encoding, in the same batch; send a Sync (wait for its answer) first' };
    p.denied = true;
    p.deniedState = '0A000';
    if (p.k === 'parse' && p.statement !== undefined) this.statements.delete(p.statement);
    this.push(p);
    return placeholder;
  }

  private deniedError(p: Pending): Buffer {
    const v = p.verdict!;
    const text = v.message ?? (v.action === 'review' ? 'statement needs review and cannot run in this session' : 'statement denied by policy');
    const state = p.deniedState ?? '42501';
    p.error = { sqlstate: state, message: text };
    return msg.errorResponse('ERROR', state, text, v.rule ? { detail: `policy rule: ${v.rule}` } : undefined);
  }

  /**
   * Notes one server message (`held` is the whole message for C, E and Z). Returns bytes to
   * send the client instead of it (the error of a denied statement), or undefined.
   */
  onBackend(code: number, held: Buffer | undefined, bodyLen: number): Buffer | undefined {
    const p = this.current;
    switch (code) {
      case 0x44: // D DataRow
        if (p) p.rows++;
        return undefined;
      case 0x64: // d CopyData from the server
        if (p?.copy) p.copy.bytes += bodyLen;
        return undefined;
      case 0x31: // 1 ParseComplete
      case 0x32: // 2 BindComplete
      case 0x33: // 3 CloseComplete
      case 0x6e: // n NoData
        if (p && p.k !== 'query') this.shift();
        return undefined;
      case 0x54: // T RowDescription
        if (p && p.k === 'describe') this.shift();
        return undefined;
      case 0x47: // G CopyInResponse
        if (p) this.copyIn = p.copy = { direction: 'in', bytes: 0 };
        return undefined;
      case 0x48: // H CopyOutResponse
        if (p) p.copy = { direction: 'out', bytes: 0 };
        return undefined;
      case 0x43: { // C CommandComplete
        this.copyIn = undefined;
        if (!p || !held) return undefined;
        // CommandComplete is one C string: read it in place (pg-protocol would build an object).
        const tag = held.toString('utf8', 5, held.length - 1);
        if (p.k === 'query') p.tags!.push(tag);
        else if (p.k === 'execute') {
          p.tags = [tag];
          this.emit(p);
          this.shift();
        }
        return undefined;
      }
      case 0x49: // I EmptyQueryResponse
      case 0x73: // s PortalSuspended
        if (p && p.k === 'execute') {
          this.emit(p, code === 0x73 ? ',"suspended":true' : undefined);
          this.shift();
        }
        return undefined;
      case 0x45: { // E ErrorResponse
        this.copyIn = undefined;
        if (!p) return undefined;
        let replacement: Buffer | undefined;
        if (p.denied) replacement = this.deniedError(p);
        else if (held) {
          const err = this.parseHeld(held) as DatabaseError;
          p.error = { sqlstate: err.code, message: err.message };
        }
        if (p.k === 'query' || p.k === 'fcall') return replacement;
        // Extended protocol: the server skips everything up to Sync.
        if (p.k === 'execute' || p.k === 'parse') this.emit(p);
        while (this.current && this.current.k !== 'sync') this.shift();
        return replacement;
      }
      case 0x56: // V FunctionCallResponse
        return undefined;
      case 0x5a: { // Z ReadyForQuery
        this.copyIn = undefined;
        if (held) {
          const s = held[5];
          this.txStatus = s === 0x54 ? 'T' : s === 0x45 ? 'E' : 'I';
        }
        if (!p) return undefined;
        if (p.k === 'query' || p.k === 'fcall') this.emit(p);
        this.shift();
        return undefined;
      }
      default:
        return undefined;
    }
  }
}
