import type { Identity } from '../../access/identity.types.js';
import type { Verdict } from '../../policies/policy.types.js';
import type { PolicyEngine } from '../../policies/engine.types.js';
import type { AuditLog } from '../../recorder/audit.types.js';
import { redactSqlSecrets } from '../../policies/sql-secrets.js';
import { auditBy } from '../../recorder/audit-events.js';
import type { BrokerDeps } from '../broker.types.js';
import { StatementTracker } from './statement-tracker.js';

/** What the seam needs: the engine and somewhere to audit what it did not allow. */
export interface PolicySeamDeps {
  policy: PolicyEngine;
  audit: AuditLog;
}

/**
 * The policy seam: every statement text (simple Query, Parse) is asked about before it is
 * forwarded, through the engine's cached evaluate (so a driver re-parsing one text does not pay
 * for the evaluator each time). The subject is asked for per statement, so roles reloaded
 * mid-session count from the next statement. Every verdict other than allow is audited.
 */
export function sqlPolicyCheck(deps: PolicySeamDeps, identity: Identity, target: string, login: string, recordingId: () => string | undefined): (sql: string) => Verdict {
  const engine = deps.policy;
  return (sql) => {
    const v = engine.evaluateCached(engine.subjectOf(identity, target, login), { protocol: 'postgres', kind: 'sql', sql });
    if (v.action !== 'allow') {
      void deps.audit.append(auditBy(identity, `policy.${v.action}`, { protocol: 'postgres', target, login, rule: v.rule, sql: redactSqlSecrets(sql).slice(0, 2000), recording: recordingId() })).catch(() => {});
    }
    return v;
  };
}

/**
 * The fastpath seam: a FunctionCall names its function by OID, with no text to judge; the engine
 * refuses it where a `functions` rule or allow-list mode applies. Refusals are audited.
 */
export function fastpathPolicyCheck(deps: PolicySeamDeps, identity: Identity, target: string, login: string, recordingId: () => string | undefined): () => Verdict {
  const engine = deps.policy;
  return () => {
    const v = engine.evaluateFastpath(engine.subjectOf(identity, target, login));
    if (v.action !== 'allow') {
      void deps.audit.append(auditBy(identity, `policy.${v.action}`, { protocol: 'postgres', target, login, rule: v.rule, sql: '-- fastpath function call', recording: recordingId() })).catch(() => {});
    }
    return v;
  };
}

/** The statement tracker of one session, with the policy seam (when a policy is loaded) and metering wired in. */
export function sessionTracker(deps: BrokerDeps, identity: Identity, target: string, login: string, recording: { id: string; line(l: string): void }): StatementTracker {
  const seam = deps.policy && { policy: deps.policy, audit: deps.audit };
  return new StatementTracker({
    redactParameters: deps.config.postgres.redactParameters,
    check: seam ? sqlPolicyCheck(seam, identity, target, login, () => recording.id) : undefined,
    checkFastpath: seam ? fastpathPolicyCheck(seam, identity, target, login, () => recording.id) : undefined,
    canHold: seam !== undefined && deps.holds !== undefined,
    record: (line) => recording.line(line),
    onStatement: deps.meter ? (action) => deps.meter!.statement(action) : undefined,
  });
}
