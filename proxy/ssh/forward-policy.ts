/**
 * Local port forwarding (direct-tcpip, `ssh -L`) under the channel policy: refused unless a
 * `channel: port-forward` rule allows the destination (`host:port` glob), then opened from the
 * target with the vaulted login and relayed with backpressure. Refusals and forwards are
 * audited with the rule and marked in the recording; a forward ends with the session.
 * Also the pieces every forwarding kind shares (remote-forward.ts, session-forward.ts):
 * `refuseForward` (audit + marker) and `relayForward` (both ways, byte counts, ends with the session).
 */
import type ssh2 from 'ssh2';
import { judgeChannel, type ChannelKind } from './channel-rules.js';
import type { ChannelContext } from './channels.types.js';
import { bindForms, canonicalHost, resolvedAddresses } from './forward-destination.js';

type Ctx = Pick<ChannelContext, 'policy' | 'subject' | 'audit' | 'recording' | 'track'>;

/**
 * Asks the channel policy; a refusal is audited (`ssh.channel.refused`, plus `policy.deny` when a
 * policy decided) and marked. Returns the allowing rule (or 'default') when allowed.
 */
export function decideForward(
  ctx: Ctx, channel: ChannelKind, destination: string | undefined, what: string, extra: Record<string, unknown> = {},
): { allowed: true; rule: string } | { allowed: false; why: string } {
  const { refusal: why, rule } = judgeChannel(ctx, channel, destination);
  if (!why) return { allowed: true, rule: rule ?? 'default' };
  refuseForward(ctx, channel, destination, what, why, rule, extra);
  return { allowed: false, why };
}

export function refuseForward(
  ctx: Ctx, channel: ChannelKind, destination: string | undefined, what: string, why: string, rule?: string, extra: Record<string, unknown> = {},
): void {
  const dest = destination !== undefined ? { destination } : {};
  ctx.audit({ type: 'ssh.channel.refused', channel, ...dest, why, ...extra, ...(rule ? { rule } : {}) });
  if (ctx.policy) ctx.audit({ type: 'policy.deny', protocol: 'ssh', kind: 'channel', channel, ...dest, rule: rule ?? 'default_action', why });
  ctx.recording.marker(`refused ${what}: ${why}`);
}

type Duplex = NodeJS.ReadWriteStream & { close(): void; on(ev: string, fn: (...a: never[]) => void): unknown };

/** Relays two channels both ways (pipe: backpressure both ways) until either closes or the session ends. */
export function relayForward(ctx: Ctx, label: string, a: Duplex, b: Duplex): void {
  let bytes = { up: 0, down: 0 };
  const untrack = ctx.track({ terminate: () => { a.close(); b.close(); } });
  a.on('data', (d: Buffer) => { bytes.up += d.length; });
  b.on('data', (d: Buffer) => { bytes.down += d.length; });
  a.pipe(b).pipe(a);
  a.on('error', () => {});
  b.on('error', () => {});
  let done = false;
  const close = () => {
    if (done) return;
    done = true;
    untrack();
    ctx.recording.marker(`${label} closed: ${bytes.up} bytes up, ${bytes.down} bytes down`);
    bytes = { up: 0, down: 0 };
    a.close();
    b.close();
  };
  a.on('close', close);
  b.on('close', close);
}

/**
 * The verdict on a forward destination in every form the target may read it as
 * (forward-destination.ts): refused when any form is refused by a rule; otherwise the verdict
 * on the canonical form (or, for a name, on the name as asked). Returns the host to open.
 */
export async function decideDestination(
  ctx: Ctx, host: string, port: number, what: string, extra: Record<string, unknown> = {},
): Promise<({ allowed: true; rule: string } | { allowed: false; why: string }) & { host: string }> {
  const canonical = canonicalHost(host);
  const forms = [...new Set([canonical, host, ...(await resolvedAddresses(canonical))])];
  return { ...decideForms(ctx, host, canonical, forms, port, what, extra), host: canonical };
}

/** The same for an `ssh -R` bind address (`bindForms`); `host` is what the target is asked for. */
export async function decideBind(
  ctx: Ctx, bindAddr: string, port: number, what: string, extra: Record<string, unknown> = {},
): Promise<({ allowed: true; rule: string } | { allowed: false; why: string }) & { host: string }> {
  const { canonical, upstream, forms } = await bindForms(bindAddr);
  return { ...decideForms(ctx, bindAddr, canonical, forms, port, what, extra), host: upstream };
}

function decideForms(
  ctx: Ctx, host: string, canonical: string, forms: string[], port: number, what: string, extra: Record<string, unknown>,
): { allowed: true; rule: string } | { allowed: false; why: string } {
  for (const f of forms) {
    const { refusal, rule } = judgeChannel(ctx, 'port-forward', `${f}:${port}`);
    if (refusal && rule) {
      refuseForward(ctx, 'port-forward', `${host}:${port}`, what, f === host ? refusal : `${refusal} (${host} is ${f})`, rule, { ...extra, normalised: `${f}:${port}` });
      return { allowed: false, why: refusal };
    }
  }
  return decideForward(ctx, 'port-forward', `${canonical}:${port}`, what, { ...extra, ...(canonical !== host ? { asked: `${host}:${port}` } : {}) });
}

export function handleDirectTcpip(
  ctx: ChannelContext,
  accept: () => ssh2.ServerChannel | undefined,
  reject: () => void,
  info: ssh2.TcpipRequestInfo,
): void {
  void decideDestination(ctx, info.destIP, info.destPort, `port forward to ${info.destIP}:${info.destPort}`).then(
    (d) => (d.allowed ? openDirect(ctx, accept, reject, { ...info, destIP: d.host }, d.rule) : reject()),
    () => reject(),
  );
}

/** Opens an allowed forward from the target, to the canonical address that was judged. */
function openDirect(ctx: ChannelContext, accept: () => ssh2.ServerChannel | undefined, reject: () => void, info: ssh2.TcpipRequestInfo, allowedBy: string): void {
  const destination = `${info.destIP}:${info.destPort}`;
  const d = { rule: allowedBy };
  ctx.upstream.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, up) => {
    if (err) {
      ctx.audit({ type: 'ssh.forward.failed', destination, why: err.message });
      ctx.recording.marker(`port forward to ${destination} failed at target: ${err.message}`);
      reject();
      return;
    }
    const ch = accept();
    if (!ch) return void up.close();
    const rule = d.rule === 'default' ? undefined : d.rule;
    ctx.audit({ type: 'ssh.forward', channel: 'port-forward', destination, rule });
    ctx.recording.marker(`port forward to ${destination} (rule ${d.rule})`);
    relayForward(ctx, `port forward to ${destination}`, ch, up);
  });
}
