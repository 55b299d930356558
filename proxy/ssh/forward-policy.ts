/**
 * Local port forwarding (direct-tcpip, `ssh -L`) under the channel policy: refused unless a
 * `channel: port-forward` rule allows the destination (`host:port` glob), then opened from the
 * target with the vaulted login and relayed with backpressure. Refusals and forwards are
 * audited with the rule and marked in the recording; a forward ends with the session.
 * Remote forwarding (tcpip-forward) stays refused: it opens a listener on the target.
 */
import type ssh2 from 'ssh2';
import { checkChannel, channelRule, type ChannelContext } from './channels.js';

export function handleDirectTcpip(
  ctx: ChannelContext,
  accept: () => ssh2.ServerChannel | undefined,
  reject: () => void,
  info: ssh2.TcpipRequestInfo,
): void {
  const destination = `${info.destIP}:${info.destPort}`;
  const rule = channelRule(ctx, 'port-forward', destination);
  const why = checkChannel(ctx, 'port-forward', destination);
  if (why) {
    ctx.audit({ type: 'ssh.channel.refused', channel: 'port-forward', destination, why, ...(rule ? { rule } : {}) });
    if (ctx.policy) ctx.audit({ type: 'policy.deny', protocol: 'ssh', kind: 'channel', channel: 'port-forward', destination, rule: rule ?? 'default_action', why });
    ctx.recording.marker(`refused port forward to ${destination}: ${why}`);
    reject();
    return;
  }
  ctx.upstream.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, up) => {
    if (err) {
      ctx.audit({ type: 'ssh.forward.failed', destination, why: err.message });
      ctx.recording.marker(`port forward to ${destination} failed at target: ${err.message}`);
      reject();
      return;
    }
    const ch = accept();
    if (!ch) return void up.close();
    ctx.audit({ type: 'ssh.forward', channel: 'port-forward', destination, rule });
    ctx.recording.marker(`port forward to ${destination} (rule ${rule ?? 'default'})`);
    let bytes = { up: 0, down: 0 };
    const untrack = ctx.track({ terminate: () => { ch.close(); up.close(); } });
    ch.on('data', (d: Buffer) => { bytes.up += d.length; });
    up.on('data', (d: Buffer) => { bytes.down += d.length; });
    ch.pipe(up).pipe(ch);
    ch.on('error', () => {});
    up.on('error', () => {});
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      untrack();
      ctx.recording.marker(`port forward to ${destination} closed: ${bytes.up} bytes up, ${bytes.down} bytes down`);
      bytes = { up: 0, down: 0 };
      ch.close();
      up.close();
    };
    ch.on('close', close);
    up.on('close', close);
  });
}
