/**
 * The relay behind an open session channel: pumps bytes both ways with backpressure, feeds the
 * recording, SFTP audit and Enter gate, and ends the client channel in the order SSH expects.
 */

import type ssh2 from 'ssh2';
import { openTap, recordSftpOp, recordTransfer, type Tap } from './raw-tap.js';
import { ScpTransfer } from './scp-transfer.js';
import { RsyncTransfer } from './rsync-transfer.js';
import type { ChannelContext, RelayMode, Terminable } from './channels.types.js';
import { EnterGate, trackedLine } from './enter-gate.js';
import type { ScreenChange } from './line-tracker.js';
import { SftpAudit } from './sftp-audit.js';
import { StdinGate } from './stdin-gate.js';
import { corkUntilTick } from './socket-cork.js';
import { tellUser } from './user-notice.js';

type ServerChannel = ssh2.ServerChannel;
type ClientChannel = ssh2.ClientChannel;
type PtyInfo = ssh2.PseudoTtyInfo;

/**
 * Pumps one channel both ways. Each direction pauses its source while the destination's
 * window is full (the upstream stops getting window adjusts, so the target stops sending) or
 * while the recording file is behind: memory stays bounded whatever the transfer size.
 *
 * End order to the client: remaining data, exit-status / exit-signal, EOF, close.
 */
export class ChannelRelay implements Terminable {
  private readonly tap: Tap | undefined;
  private readonly sftp: SftpAudit | undefined;
  private readonly scp: ScpTransfer | undefined;
  private readonly rsync: RsyncTransfer | undefined;
  private readonly gate: EnterGate | undefined;
  private readonly stdinGate: StdinGate | undefined;
  private exit: { code?: number | null; signal?: string; dump?: boolean; desc?: string } | undefined;
  private transferred = { up: 0, down: 0 };
  private finished = false;
  private readonly untrack: () => void;

  constructor(
    private readonly ctx: ChannelContext,
    private readonly client: ServerChannel,
    private readonly up: ClientChannel,
    private readonly mode: RelayMode,
    pty?: PtyInfo,
    /** The channel's tap if one was opened before the upstream channel (a notice during the exec's policy step). */
    tap?: Tap,
  ) {
    this.untrack = ctx.track(this);
    const rec = ctx.recording;
    this.tap = tap ?? openTap(rec, mode, { stdinJudged: mode.kind === 'raw' && mode.gate && !!ctx.onEnter });
    if (mode.kind === 'transfer' && mode.scp) {
      const { direction, path, dir } = mode.scp;
      this.scp = new ScpTransfer(direction, path, (f, digest) => recordTransfer(rec, this.tap, { ...f, via: 'scp' }, digest), (why) => rec.marker(why), ctx.transferContent, dir || path.endsWith('/'));
    }
    if (mode.kind === 'raw' && mode.exec) {
      this.rsync = RsyncTransfer.forCommand(mode.exec, (f, digest) => recordTransfer(rec, this.tap, { ...f, via: 'rsync' }, digest), (why) => {
        rec.marker(why);
        ctx.audit({ type: 'ssh.transfer.undecoded', via: 'rsync', why });
      }, ctx.transferContent);
    }
    if (mode.kind === 'sftp') {
      const content = ctx.transferContent;
      this.sftp = new SftpAudit((op) => recordSftpOp(rec, this.tap, op), (why) => rec.marker(why), content ? { content: () => content() } : {});
    }
    if (mode.kind === 'terminal' && mode.gate && ctx.onEnter) {
      const onScreen = (c: ScreenChange) => {
        rec.marker(c.mode === 'alternate' ? `screen: alternate (${c.owner ? `${c.owner}, lines not judged` : 'no trusted program: lines still judged'})` : 'screen: normal');
        ctx.audit({ type: 'ssh.screen', mode: c.mode, ...(c.owner ? { owner: c.owner } : {}), judged: !c.owner });
      };
      this.gate = new EnterGate(ctx.onEnter, trackedLine({ cols: pty?.cols || 80, rows: pty?.rows || 24 }, onScreen), {
        toTarget: (d) => this.writeUp(d),
        toClient: (t) => tellUser(rec, this.tap, this.client, t, 'stdout'),
        pauseClient: () => this.client.pause(),
        resumeClient: () => this.client.resume(),
        // Recorded as the target gets it: held type-ahead is compared with its echo, not masked for coming early.
        recordInput: (d) => this.tap?.input(d),
        onVerdict: (line, v) => {
          if (v.action === 'deny') {
            rec.marker(`denied: ${line || '(input not echoed)'}: ${v.message}${v.rule ? ` (rule ${v.rule})` : ''}`);
            ctx.audit({ type: 'ssh.command.denied', command: line, why: v.message, ...(v.rule ? { rule: v.rule } : {}) });
          } else if (v.allowedBy) {
            // The index's command event for the line, with the rule that let it through.
            rec.marker(`allowed (${v.allowedBy}): ${line || '(input not echoed)'}`);
          }
        },
      });
    }

    if (mode.kind === 'raw' && mode.gate) {
      // No on-enter hook means no policy: nothing to judge with (the same as a pty shell).
      if (ctx.onEnter) {
        this.stdinGate = new StdinGate(ctx.onEnter, {
          toTarget: (d) => this.writeUp(d),
          toClient: (t) => tellUser(rec, this.tap, this.client.stderr, t, 'stderr'),
          pauseClient: () => this.client.pause(),
          resumeClient: () => this.client.resume(),
          onVerdict: (line, v) => {
            if (v.action === 'allow') {
              if (v.allowedBy) rec.marker(`allowed (${v.allowedBy}): ${line}`);
              return;
            }
            rec.marker(`denied: ${line}: ${v.message}${v.rule ? ` (rule ${v.rule})` : ''}`);
            ctx.audit({ type: 'ssh.command.denied', command: line, via: 'stdin', why: v.message, ...(v.rule ? { rule: v.rule } : {}) });
          },
        });
      }
    }

    this.pump(up, client, (d) => {
      this.transferred.down += d.length;
      this.tap?.output(d);
      this.sftp?.server(d);
      if (this.scp && this.mode.kind === 'transfer' && this.mode.scp?.direction === 'download') this.scp.feed(d);
      this.gate?.output(d);
      this.rsync?.fromTarget(d);
    });
    this.pump(up.stderr, client.stderr, (d) => {
      this.transferred.down += d.length;
      this.tap?.stderr(d);
    });
    client.on('data', (d: Buffer) => {
      this.transferred.up += d.length;
      this.ctx.countBytes?.('client_to_target', d.length);
      if (!this.gate) this.tap?.input(d);
      this.sftp?.client(d);
      if (this.scp && this.mode.kind === 'transfer' && this.mode.scp?.direction === 'upload') this.scp.feed(d);
      this.rsync?.fromClient(d);
      if (this.gate) this.gate.input(d);
      else if (this.stdinGate) this.stdinGate.input(d);
      else this.writeUp(d);
    });

    // EOF goes upstream after the last held line has been judged and written.
    client.on('end', () => void (this.stdinGate ? this.stdinGate.end() : this.gate ? this.gate.idle() : Promise.resolve()).then(() => up.end()));
    client.resume();
    client.on('error', () => {});
    up.on('error', () => {});
    up.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
      this.exit = { code, signal, dump, desc };
    });
    up.on('close', () => void this.finish());
  }

  private writeUp(d: Buffer): void {
    if (!this.up.write(d)) {
      this.client.pause();
      this.up.once('drain', () => this.client.resume());
    }
  }

  private pump(src: NodeJS.ReadableStream, dst: NodeJS.WritableStream, tap: (d: Buffer) => void): void {
    src.on('data', (d: Buffer) => {
      tap(d);
      this.ctx.countBytes?.('target_to_client', d.length);
      const rec = this.ctx.recording;
      corkUntilTick(dst);
      if (!dst.write(d)) {
        src.pause();
        dst.once('drain', () => src.resume());
      } else if (rec.backlogged) {
        src.pause();
        void rec.drained().then(() => src.resume());
      }
    });
  }

  resize(cols: number, rows: number, width: number, height: number): void {
    this.up.setWindow(rows, cols, height, width);
    this.gate?.resize(cols, rows);
  }

  signal(name: string): void {
    this.ctx.recording.marker(`signal ${name}`);
    this.up.signal(name);
  }

  clientClosed(): void {
    this.up.close();
    void this.finish();
  }

  notice(message: string): void {
    if (this.finished || !this.client.stderr) return;
    tellUser(this.ctx.recording, this.tap, this.client.stderr, `\r\n[pam] ${message}\r\n`, 'stderr');
  }

  /** Ends the channel from the proxy's side (kill, revocation, expiry) with a line for the user. */
  terminate(reason: string): void {
    if (this.finished) return;
    tellUser(this.ctx.recording, this.tap, this.client.stderr, `\r\n[pam] session ended: ${reason}\r\n`, 'stderr');
    this.up.close();
    void this.finish();
  }

  private async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.gate?.dispose();
    this.tap?.flush();
    this.sftp?.end();
    this.scp?.end();
    this.rsync?.end();
    this.stdinGate?.dispose();
    const rec = this.ctx.recording;
    if (this.mode.kind === 'transfer') rec.marker(`${this.mode.label}: ${this.transferred.up} bytes up, ${this.transferred.down} bytes down`);
    // Exit status must follow all data: wait until both writers have flushed what they hold.
    await Promise.all([flushed(this.client), flushed(this.client.stderr)]);
    const e = this.exit;
    if (e?.signal) {
      rec.marker(`exit signal ${e.signal}`);
      this.client.exit(e.signal, !!e.dump, e.desc ?? '');
    } else if (typeof e?.code === 'number') {
      rec.marker(`exit status ${e.code}`);
      this.client.exit(e.code);
    }
    this.client.end();
    this.untrack();
  }
}

/** Resolves once everything written so far has been handed to the SSH layer. */
function flushed(w: NodeJS.WritableStream & { writableLength?: number; writableEnded?: boolean }): Promise<void> {
  if (w.writableEnded || !w.writableLength) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 1000);
    w.write(Buffer.alloc(0), () => {
      clearTimeout(t);
      resolve();
    });
  });
}
