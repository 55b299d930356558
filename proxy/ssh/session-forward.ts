/**
 * Agent forwarding (`ssh -A`, `auth-agent-req@openssh.com`) and X11 forwarding (`ssh -X`,
 * `x11-req`, RFC 4254 §6.3) under the channel policy (`channel: agent-forward` / `x11`, no
 * destination). Refused and audited unless a rule allows them. Allowed, the session's request is
 * repeated on the upstream session (ssh2 `agentForward` / `x11` options on exec and shell), and
 * each channel the target opens back (`auth-agent@openssh.com`, `x11`) is opened to the client
 * and relayed. Grants and every relayed channel are audited and marked in the recording.
 *
 * ssh2 1.17 has no public server-side method to open an `auth-agent@openssh.com` channel to the
 * client (its Connection only has `x11()` and `forwardOut()`, and its channel-open switch throws
 * for other types); `openAgentChannel` reaches the protocol layer's `openssh_authAgent` through
 * the Connection's internals, guarded so that a changed ssh2 refuses instead of crashing.
 */
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { ChannelContext, ForwardOptions, SessionForwarding, X11Request } from './channels.types.js';
import { decideForward, relayForward } from './forward-policy.js';

type Connection = ssh2.Connection;
type Channel = ssh2.ServerChannel;
type StreamCb = (err: Error | undefined, stream?: Duplex) => void;

/** Window and packet size ssh2 uses for the channels it opens (lib/Channel.js). */
const MAX_WINDOW = 2 * 1024 * 1024;
const PACKET_SIZE = 32 * 1024;

/**
 * The agent the upstream ssh2 Client is given (`agent` connect option). It holds no keys (the
 * upstream login never uses it); when the target opens an agent channel, `getStream` opens one
 * to the client, but only once a session's agent forwarding was allowed.
 */
export class ForwardedAgent extends ssh2.BaseAgent {
  /** Set when agent forwarding was allowed; absent, the target's agent channels are refused. */
  open: ((cb: StreamCb) => void) | undefined;

  getIdentities(cb: (err: Error | undefined, keys?: Buffer[]) => void): void {
    cb(undefined, []);
  }

  sign(_key: unknown, _data: Buffer, options: unknown, cb?: (err: Error | undefined) => void): void {
    const done = typeof options === 'function' ? (options as (err: Error) => void) : cb;
    done?.(new Error('the proxy agent does not sign'));
  }

  getStream(cb: StreamCb): void {
    if (!this.open) return cb(new Error('agent forwarding not allowed'));
    this.open(cb);
  }
}

interface ServerInternals {
  _chanMgr?: { add(wrapper: unknown): number };
  _protocol?: { openssh_authAgent?(chan: number, window: number, packet: number): void };
}

/** Opens an `auth-agent@openssh.com` channel to the client (see the file comment). */
export function openAgentChannel(conn: Connection, cb: (err: Error | undefined, ch?: Channel) => void): void {
  const c = conn as unknown as ServerInternals;
  if (typeof c._chanMgr?.add !== 'function' || typeof c._protocol?.openssh_authAgent !== 'function') {
    return cb(new Error('this ssh2 version cannot open agent channels to the client'));
  }
  const wrapper = Object.assign((err: Error | undefined, ch?: Channel) => cb(err, ch), { type: 'auth-agent@openssh.com' });
  const id = c._chanMgr.add(wrapper);
  if (id === -1) return cb(new Error('no free channels'));
  c._protocol.openssh_authAgent(id, MAX_WINDOW, PACKET_SIZE);
}

export type { ForwardOptions, X11Request } from './channels.types.js';

export class SessionForwards implements SessionForwarding {
  private x11Sessions = 0;

  constructor(
    private readonly ctx: ChannelContext,
    private readonly client: Connection,
    private readonly agent: ForwardedAgent,
  ) {
    ctx.upstream.on('x11', (info, accept, reject) => this.handleX11Open(info, accept, reject));
  }

  /** `auth-agent-req@openssh.com` on a client session: true = accept it and ask upstream too. */
  allowAgent(): boolean {
    const d = decideForward(this.ctx, 'agent-forward', undefined, 'agent forwarding');
    if (!d.allowed) return false;
    this.ctx.audit({ type: 'ssh.forward', channel: 'agent-forward', rule: d.rule === 'default' ? undefined : d.rule });
    this.ctx.recording.marker(`agent forwarding (rule ${d.rule})`);
    this.agent.open ??= (cb) => this.handleAgentOpen(cb);
    return true;
  }

  /** `x11-req` on a client session: the upstream request to make, or undefined (refused). */
  allowX11(info: ssh2.X11Info): X11Request | undefined {
    const d = decideForward(this.ctx, 'x11', undefined, 'x11');
    if (!d.allowed) return undefined;
    this.ctx.audit({ type: 'ssh.forward', channel: 'x11', rule: d.rule === 'default' ? undefined : d.rule, screen: info.screen, single: info.single });
    this.ctx.recording.marker(`x11 forwarding, screen ${info.screen} (rule ${d.rule})`);
    this.x11Sessions++;
    return { single: info.single, screen: info.screen, protocol: info.protocol, cookie: info.cookie };
  }

  /**
   * Opens the upstream session with the allowed forwardings. If the target refuses one of them
   * (sshd `AllowAgentForwarding no`, `X11Forwarding no`, no xauth), ssh2 fails the whole
   * request before the shell or command starts: it is marked and the session opens without it,
   * as OpenSSH's client does.
   */
  start<T>(fwd: ForwardOptions, open: (fwd: ForwardOptions) => (cb: (err: Error | undefined, up: T) => void) => void, cb: (err: Error | undefined, up: T) => void): void {
    if (!fwd.agentForward && !fwd.x11) return open(fwd)(cb);
    open(fwd)((err, up) => {
      if (!err || !/X11|agent forwarding/i.test(err.message)) return cb(err, up);
      this.ctx.audit({ type: 'ssh.forward.failed', channel: fwd.x11 ? 'x11' : 'agent-forward', why: err.message });
      this.ctx.recording.marker(`forwarding refused by the target: ${err.message}`);
      open({})(cb);
    });
  }

  private handleAgentOpen(cb: StreamCb): void {
    openAgentChannel(this.client, (err, ch) => {
      if (err || !ch) {
        this.ctx.recording.marker(`agent channel refused by the client: ${err?.message ?? 'no channel'}`);
        return cb(err ?? new Error('no channel'));
      }
      this.ctx.audit({ type: 'ssh.forward.connection', channel: 'agent-forward' });
      this.ctx.recording.marker('agent channel opened by the target');
      // ssh2's Client pipes the target's channel and this one together; count and end with the session.
      let bytes = 0;
      ch.on('data', (d: Buffer) => { bytes += d.length; });
      const untrack = this.ctx.track({ terminate: () => ch.close() });
      ch.on('close', () => {
        untrack();
        this.ctx.recording.marker(`agent channel closed: ${bytes} bytes from the client's agent`);
      });
      cb(undefined, ch);
    });
  }

  private handleX11Open(info: ssh2.X11Details, accept: () => ssh2.ClientChannel, reject: () => void): void {
    if (this.x11Sessions === 0) return reject();
    const label = `x11 connection from ${info.srcIP}:${info.srcPort}`;
    this.client.x11(info.srcIP, info.srcPort, (err, ch) => {
      if (err) {
        this.ctx.recording.marker(`${label} refused by the client: ${err.message}`);
        return reject();
      }
      const up = accept();
      this.ctx.audit({ type: 'ssh.forward.connection', channel: 'x11', origin: `${info.srcIP}:${info.srcPort}` });
      this.ctx.recording.marker(label);
      relayForward(this.ctx, label, up, ch);
    });
  }
}
