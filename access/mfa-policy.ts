/**
 * Step-up for privilege: does a verified identity meet `require_mfa` / `max_auth_age`?
 *
 * Pure: the identity's claims, the rules that apply and the clock in, a refusal message out.
 * Rules combine strictly: any rule that requires MFA requires it, the shortest max_auth_age
 * wins. `amr` values are the registered ones of RFC 8176 §2 that mean a second factor or a
 * phishing-resistant one; `acr` counts when it is one of the configured `mfa.acr_values`.
 */
import type { Identity } from './identity.types.js';
import type { MfaRule } from '../config/config.types.js';
import { formatDuration } from '../config/duration.js';

/** RFC 8176 `amr` values that show more than one factor (or a proof-of-possession key). */
export const MFA_AMR = ['mfa', 'otp', 'hwk', 'swk', 'sms', 'fpt', 'face', 'pop'] as const;

/** The strictest reading of several rules; undefined entries are ignored. */
export function combineMfa(...rules: (MfaRule | undefined)[]): MfaRule {
  const out: MfaRule = {};
  for (const r of rules) {
    if (!r) continue;
    if (r.requireMfa) out.requireMfa = true;
    if (r.maxAuthAgeMs !== undefined) out.maxAuthAgeMs = Math.min(out.maxAuthAgeMs ?? Infinity, r.maxAuthAgeMs);
  }
  return out;
}

/** Whether the token shows a multi-factor sign-in. */
export function hasMfa(identity: Pick<Identity, 'amr' | 'acr'>, acrValues: readonly string[] = []): boolean {
  if (identity.amr?.some((m) => (MFA_AMR as readonly string[]).includes(m))) return true;
  return identity.acr !== undefined && acrValues.includes(identity.acr);
}

/**
 * Undefined when `identity` meets `rule`; otherwise a message for the user saying what is
 * missing and what to do. `what` names the action ("requesting root@web1").
 */
export function mfaRefusal(
  identity: Pick<Identity, 'amr' | 'acr' | 'authTime'>,
  rule: MfaRule,
  opts: { now: number; acrValues?: readonly string[]; what: string },
): string | undefined {
  const missing: string[] = [];
  if (rule.requireMfa && !hasMfa(identity, opts.acrValues)) {
    const amr = identity.amr?.length ? `amr ${identity.amr.join(', ')}` : 'no amr claim';
    const acr = opts.acrValues?.length ? ` and acr ${identity.acr ? `"${identity.acr}"` : '(none)'} is not one of ${opts.acrValues.join(', ')}` : '';
    missing.push(`a multi-factor sign-in (your token has ${amr}, none of ${MFA_AMR.join(', ')}${acr})`);
  }
  if (rule.maxAuthAgeMs !== undefined) {
    if (identity.authTime === undefined) missing.push(`a sign-in within the last ${formatDuration(rule.maxAuthAgeMs)} (your token has no auth_time)`);
    else if (opts.now - identity.authTime > rule.maxAuthAgeMs) {
      missing.push(`a sign-in within the last ${formatDuration(rule.maxAuthAgeMs)} (you signed in ${formatDuration(Math.max(0, opts.now - identity.authTime))} ago)`);
    }
  }
  if (missing.length === 0) return undefined;
  return `${opts.what} needs ${missing.join(' and ')}; sign in again at your identity provider with MFA and use the new token`;
}

/**
 * The approver's step-up: of the approver's roles that may decide for `forRoles`, one whose
 * `require_mfa` / `max_auth_age` the token meets is enough; undefined when one does (or none
 * asks for any), else the first refusal.
 */
export function approverRefusal(
  identity: Pick<Identity, 'amr' | 'acr' | 'authTime'>,
  approving: { requireMfa?: boolean; maxAuthAgeMs?: number }[],
  opts: { now: number; acrValues?: readonly string[]; what: string },
): string | undefined {
  const why = approving.map((r) => mfaRefusal(identity, { requireMfa: r.requireMfa, maxAuthAgeMs: r.maxAuthAgeMs }, opts));
  return why.length > 0 && why.every((w) => w !== undefined) ? why[0] : undefined;
}
