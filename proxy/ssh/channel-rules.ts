/**
 * Channel-kind rules (sftp, scp, port, agent and X11 forwarding): one policy evaluation gives both
 * the refusal and the deciding rule. A leaf module, so the forwarding code and the session
 * channel handler can both use it without an import cycle.
 */

import type { PolicyRequest } from '../../policies/policy.types.js';
import type { ChannelContext } from './channels.types.js';

/** Blocked unless a policy allows it (no policy: refused). */
const DEFAULT_REFUSED = new Set(['port-forward', 'agent-forward', 'x11', 'subsystem']);

export type ChannelKind = 'sftp' | 'scp' | 'port-forward' | 'agent-forward' | 'x11' | 'subsystem';

type Judged = Pick<ChannelContext, 'policy' | 'subject'>;

/** The verdict on a channel kind: `refusal` is the message when it is refused; `rule` the deciding rule. */
export function judgeChannel(ctx: Judged, channel: ChannelKind, destination?: string): { refusal?: string; rule?: string } {
  if (!ctx.policy) return { refusal: DEFAULT_REFUSED.has(channel) ? `${channel} is not allowed through this proxy` : undefined };
  const v = ctx.policy.evaluate({ ...ctx.subject, protocol: 'ssh', kind: 'channel', channel, destination } as PolicyRequest);
  if (v.action === 'deny' || v.action === 'review') return { refusal: v.message ?? `${channel} denied by policy${v.rule ? ` (rule ${v.rule})` : ''}`, rule: v.rule };
  return { rule: v.rule };
}

/** Asks the policy about a channel kind; returns the refusal message, or undefined if allowed. */
export function checkChannel(ctx: Judged, channel: ChannelKind, destination?: string): string | undefined {
  return judgeChannel(ctx, channel, destination).refusal;
}
