import type { PolicyIntent, PolicyRequest, PolicySubject, Verdict } from './policy.types.js';
import type { RuleSet } from './rules.js';

/** Who is asking, as the engine needs it (an access Identity has these fields). */
export interface PolicyIdentity {
  user: string;
  groups: string[];
}

/**
 * What the brokers hold: the rules in force (swapped in place when files change) and the
 * questions the brokers ask. Every method fails closed: an evaluation error is a deny.
 */
export interface PolicyEngine {
  /** The verdict for one request. */
  evaluate(request: PolicyRequest): Verdict;
  /**
   * The same verdict as `evaluate({ ...subject, ...intent })`. SQL verdicts are memoized per
   * subject (a subject from `subjectOf`) by `sqlCacheKey` until the rules change, so a driver
   * re-sending one text, or pgbench's texts that differ only in numbers, costs one evaluation.
   */
  evaluateCached(subject: PolicySubject, intent: PolicyIntent): Verdict;
  /**
   * A fastpath FunctionCall (no SQL text to judge) for the subject: `evaluateFastpath` on the
   * rules in force and the target's default.
   */
  evaluateFastpath(subject: PolicySubject): Verdict;
  /**
   * The subject of an identity on a target: roles resolved from the identity's groups with the
   * roles in force. The same object while those roles stay in force (so it keys the verdict cache).
   */
  subjectOf(identity: PolicyIdentity, target: string, login: string): PolicySubject;
  /** The rule set in force. */
  rules(): RuleSet;
}
