/**
 * Remote port forwarding (`ssh -R`, RFC 4254 §7.1 `tcpip-forward` global request) under the
 * channel policy: a `channel: port-forward` rule must allow `bind_addr:port` (e.g. `127.0.0.1:8080`
 * or `localhost:0`), the bind address normalised first as the target's sshd reads it
 * (`bindForms`: `0x7f000001` is `127.0.0.1`, `0`/`0x0`/`*`/`""` listen on every interface like
 * `0.0.0.0`; refused when any form is refused by a rule). Allowed, the proxy asks the target for
 * the canonical listener with the vaulted login (`forwardIn`); each connection the target accepts on it
 * (`forwarded-tcpip`) is opened to the client as a forwarded-tcpip channel and relayed. The
 * grant, each connection and its byte counts are audited / marked in the recording; refusals
 * are audited. Listeners die with the upstream connection, so they end with the session.
 */
import type ssh2 from 'ssh2';
import type { ChannelContext } from './channels.js';
import { decideBind, refuseForward, relayForward } from './forward-policy.js';

type Connection = ssh2.Connection;
type Reply = ((port?: number) => void) | undefined;

interface Bound {
  /** As the client asked for it: the client finds its forward by this address and the bound port. */
  bindAddr: string;
  /** As the target was asked for it (canonical): the target names its connections by it. */
  upstream: string;
  port: number;
  rule: string;
}

export class RemoteForwards {
  /** Keyed as ssh2's Client reports connections: `upstream:boundPort`. */
  private readonly bound = new Map<string, Bound>();

  constructor(private readonly ctx: ChannelContext, private readonly client: Connection) {
    ctx.upstream.on('tcp connection', (info, accept, reject) => this.handleConnection(info, accept, reject));
  }

  /** The downstream's global requests (`request` event of ssh2's server Connection). */
  handleRequest(accept: Reply, reject: Reply, name: string, info: unknown): void {
    const i = info as { bindAddr?: string; bindPort?: number; socketPath?: string };
    if (name === 'tcpip-forward') return this.handleForward(i.bindAddr ?? '', i.bindPort ?? 0, accept, reject);
    if (name === 'cancel-tcpip-forward') return this.handleCancel(i.bindAddr ?? '', i.bindPort ?? 0, accept, reject);
    // streamlocal (`ssh -R /path:…`) is not relayed: refused, whatever the rules say.
    const destination = i.bindAddr !== undefined ? `${i.bindAddr}:${i.bindPort}` : i.socketPath;
    refuseForward(this.ctx, 'port-forward', destination, `${name} ${destination ?? ''}`, `${name} is not supported by this proxy`, undefined, { request: name });
    reject?.();
  }

  private handleForward(bindAddr: string, bindPort: number, accept: Reply, reject: Reply): void {
    const destination = `${bindAddr}:${bindPort}`;
    const what = `remote forward (-R) ${destination}`;
    void decideBind(this.ctx, bindAddr, bindPort, what, { request: 'tcpip-forward' }).then(
      (d) => (d.allowed ? this.listen(bindAddr, d.host, bindPort, d.rule, what, accept, reject) : reject?.()),
      () => reject?.(),
    );
  }

  private listen(bindAddr: string, upstream: string, bindPort: number, rule: string, what: string, accept: Reply, reject: Reply): void {
    const destination = `${bindAddr}:${bindPort}`;
    const asked = upstream !== bindAddr ? { upstream: `${upstream}:${bindPort}` } : {};
    try {
      this.ctx.upstream.forwardIn(upstream, bindPort, (err, port) => {
        if (err) {
          this.ctx.audit({ type: 'ssh.forward.failed', channel: 'port-forward', request: 'tcpip-forward', destination, ...asked, why: err.message });
          this.ctx.recording.marker(`${what} failed at target: ${err.message}`);
          return void reject?.();
        }
        this.bound.set(`${upstream}:${port}`, { bindAddr, upstream, port, rule });
        this.ctx.audit({ type: 'ssh.forward', channel: 'port-forward', request: 'tcpip-forward', destination, ...asked, port, rule: rule === 'default' ? undefined : rule });
        this.ctx.recording.marker(`${what} listening on target port ${port} (rule ${rule})`);
        accept?.(port);
      });
    } catch (err) {
      this.ctx.recording.marker(`${what} failed: ${(err as Error).message}`);
      reject?.();
    }
  }

  private handleCancel(bindAddr: string, bindPort: number, accept: Reply, reject: Reply): void {
    const key = [...this.bound.entries()].find(([, b]) => b.bindAddr === bindAddr && b.port === bindPort)?.[0];
    if (key === undefined) return void reject?.();
    const b = this.bound.get(key)!;
    this.bound.delete(key);
    try {
      this.ctx.upstream.unforwardIn(b.upstream, bindPort, (err) => (err ? reject?.() : accept?.()));
      this.ctx.recording.marker(`remote forward (-R) ${bindAddr}:${bindPort} cancelled`);
    } catch {
      reject?.();
    }
  }

  private handleConnection(info: ssh2.TcpConnectionDetails, accept: () => ssh2.ClientChannel, reject: () => void): void {
    const b = this.bound.get(`${info.destIP}:${info.destPort}`);
    if (!b) return reject();
    const label = `remote forward (-R) ${b.bindAddr}:${b.port} from ${info.srcIP}:${info.srcPort}`;
    this.client.forwardOut(b.bindAddr, b.port, info.srcIP, info.srcPort, (err, ch) => {
      if (err) {
        this.ctx.recording.marker(`${label} refused by the client: ${err.message}`);
        return reject();
      }
      const up = accept();
      this.ctx.audit({ type: 'ssh.forward.connection', channel: 'port-forward', request: 'tcpip-forward', destination: `${b.bindAddr}:${b.port}`, origin: `${info.srcIP}:${info.srcPort}`, rule: b.rule });
      this.ctx.recording.marker(label);
      relayForward(this.ctx, label, ch, up);
    });
  }
}
