/**
 * The command policy as the SSH broker applies it: one `decide(command)` for exec requests and
 * for every Enter in a pty session. It evaluates the running PolicyEngine (so a reloaded rule
 * file applies to the next command), audits every non-allow verdict with its rule, writes the
 * recording marker for alerts and reviews, and turns a `review` into a HoldService hold that an
 * approver decides (`pam approve-command hold_…`): approved → allow, denied/expired/cancelled →
 * deny. The caller marks denials (`denied: …`) and drops the command.
 */
import type { Identity } from '../../access/identity.types.js';
import type { HoldService } from '../../access/holds.js';
import type { AuditEvent } from '../../recorder/audit.types.js';
import type { PolicySubject, Verdict } from '../../policies/policy.types.js';
import type { PolicyEngine } from '../../policies/engine.types.js';
import type { EnterVerdict } from './enter-gate.js';
import { DEFAULT_REVIEW_TIMEOUT_MS } from '../../config/defaults.js';


export interface CommandPolicyDeps {
  policy: PolicyEngine;
  subject: PolicySubject;
  identity: Identity;
  /** Absent: `review` acts as `deny`. */
  holds?: HoldService;
  reviewTimeoutMs?: number;
  /** The recording id, kept on holds so an approver can open the live session. */
  sessionId?: string;
  audit(event: AuditEvent): void;
  marker(text: string): void;
}

export interface DecideIo {
  /** A line for the user (terminal or stderr). */
  notify(text: string): void;
  /** Aborting cancels a pending review (the hold expires). */
  signal?: AbortSignal;
  via: 'shell' | 'exec';
  /** Input the target did not echo (maybe a password): judged like any line (rules, then the default), its text never logged. */
  unechoed?: boolean;
  /** Only a rule decides (deny, review, alert); without one the line is allowed, not judged by the default. */
  rulesOnly?: boolean;
}

export type CommandDecision = EnterVerdict & { verdict?: Verdict };

export class CommandPolicy {
  constructor(private readonly deps: CommandPolicyDeps) {}

  async decide(command: string, io: DecideIo): Promise<CommandDecision> {
    const d = this.deps;
    const v = d.policy.evaluate({ ...d.subject, protocol: 'ssh', kind: 'command', command, ...(io.unechoed ? { unechoed: true } : {}) });
    if (v.action === 'allow') return { action: 'allow', allowedBy: v.rule ?? 'default_action', verdict: v };
    // A second reading of a line already allowed: only a rule may stop it.
    if (io.rulesOnly && !v.rule) return { action: 'allow', verdict: v };
    // Not echoed: maybe a password, so its text is never written down. It is judged all the same,
    // by the target's default too: the proxy cannot tell a password at a sudo prompt from a command
    // typed after `stty -echo` (the target's output, prompt included, is the user's to forge), and
    // letting unechoed lines pass a default deny made echo off a way around an allow-list.
    const shown = io.unechoed ? '(input not echoed)' : command;
    const base = { protocol: 'ssh', kind: 'command', via: io.via, rule: v.rule ?? 'default_action', command: shown } as const;
    // The default's message quotes the line: for unechoed input the proxy words its own.
    const quiet = io.unechoed && !v.rule ? `input typed with echo off is judged as a command: no rule decides it, so this target's default applies (${v.action})` : undefined;
    if (v.action === 'alert') {
      d.audit({ type: 'policy.alert', ...base, message: quiet ?? v.message });
      d.marker(`alert (${base.rule}): ${shown}`);
      return { action: 'allow', verdict: v };
    }
    const message = quiet ?? v.message ?? `command ${v.action === 'deny' ? 'denied' : 'needs review'} by policy`;
    if (v.action === 'deny' || !d.holds || io.unechoed) {
      d.audit({ type: 'policy.deny', ...base, action: v.action, why: message });
      return { action: 'deny', message: v.action === 'review' ? `${message} (needs approval, which is not possible here)` : message, rule: base.rule, verdict: v };
    }
    return this.review(command, v, message, io);
  }

  private async review(command: string, v: Verdict, message: string, io: DecideIo): Promise<CommandDecision> {
    const d = this.deps;
    const rule = v.rule ?? 'default_action';
    const holds = d.holds!;
    const hold = await holds.create(d.identity, {
      kind: 'command', protocol: 'ssh', target: d.subject.target, login: d.subject.login, text: command, rule: v.rule, message, sessionId: d.sessionId,
    }, d.reviewTimeoutMs ?? DEFAULT_REVIEW_TIMEOUT_MS);
    d.audit({ type: 'policy.review', protocol: 'ssh', kind: 'command', via: io.via, rule, command, hold: hold.id });
    d.marker(`review (${rule}): ${hold.id}: ${command}`);
    io.notify(`\r\n[pam] ${message}\r\n[pam] waiting for approval: pam approve-command ${hold.id}  (Ctrl-C cancels)\r\n`);
    const status = await holds.wait(hold.id, io.signal);
    if (status === 'approved') {
      d.marker(`approved: ${hold.id}: ${command}`);
      io.notify(`[pam] approved: ${hold.id}\r\n`);
      return { action: 'allow', approved: true, verdict: v };
    }
    const why = status === 'denied' ? 'an approver refused it' : io.signal?.aborted ? 'cancelled' : 'nobody approved it in time';
    d.audit({ type: 'policy.deny', protocol: 'ssh', kind: 'command', via: io.via, rule, command, hold: hold.id, action: 'review', status, why });
    return { action: 'deny', message: `${hold.id} not approved: ${why}`, rule, verdict: v };
  }
}
