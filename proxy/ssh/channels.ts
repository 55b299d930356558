import type ssh2 from 'ssh2';
import { splitCommands } from '../../policies/shell-words.js';
import { ChannelRelay } from './channel-relay.js';
import type { ChannelContext, ForwardOptions, RelayMode } from './channels.types.js';
import { checkChannel, judgeChannel } from './channel-rules.js';
import { plainScp, scpEnds, scpPathForms } from './scp-command.js';
import { lazyTap, tellUser, type LazyTap } from './user-notice.js';

export type { ChannelContext, Terminable } from './channels.types.js';
export { ChannelRelay } from './channel-relay.js';
export { parseScp, plainScp } from './scp-command.js';

type ServerChannel = ssh2.ServerChannel;
type ClientChannel = ssh2.ClientChannel;
type Session = ssh2.Session;
type PtyInfo = ssh2.PseudoTtyInfo;

function envAllowed(name: string, allow: string[]): boolean {
  return allow.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/**
 * One client session channel: collects pty-req and env, then opens the matching upstream
 * channel on shell / exec / subsystem and relays both ways with backpressure.
 */
export function handleSessionChannel(ctx: ChannelContext, session: Session): void {
  let pty: PtyInfo | undefined;
  const env: Record<string, string> = {};
  let relay: ChannelRelay | undefined;
  const fwd: ForwardOptions = {};

  session.on('pty', (accept, _reject, info) => {
    pty = info;
    if (!ctx.recording.isStarted) ctx.recording.start({ width: info.cols, height: info.rows, term: info.term });
    else ctx.recording.resize(info.cols, info.rows);
    accept?.();
  });
  session.on('env', (accept, reject, info) => {
    if (envAllowed(info.key, ctx.envAllow)) {
      env[info.key] = info.val;
      accept?.();
    } else reject?.();
  });
  session.on('window-change', (accept, _reject, info) => {
    if (pty) pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
    relay?.resize(info.cols, info.rows, info.width, info.height);
    ctx.recording.resize(info.cols, info.rows);
    accept?.();
  });
  session.on('signal', (accept, _reject, info) => {
    relay?.signal(info.name);
    accept?.();
  });
  session.on('x11', (accept, reject, info) => {
    if (ctx.forwards) {
      fwd.x11 = ctx.forwards.allowX11(info);
      return void (fwd.x11 ? accept?.() : reject?.());
    }
    const why = checkChannel(ctx, 'x11') ?? 'X11 forwarding is not supported by this proxy';
    ctx.audit({ type: 'ssh.channel.refused', channel: 'x11', why });
    ctx.recording.marker(`refused x11: ${why}`);
    reject?.();
  });
  session.on('auth-agent', (accept, reject) => {
    if (ctx.forwards) {
      fwd.agentForward = ctx.forwards.allowAgent() || undefined;
      return void (fwd.agentForward ? accept?.() : reject?.());
    }
    const why = checkChannel(ctx, 'agent-forward') ?? 'agent forwarding is not supported by this proxy';
    ctx.audit({ type: 'ssh.channel.refused', channel: 'agent-forward', why });
    ctx.recording.marker(`refused agent forwarding: ${why}`);
    reject?.();
  });

  // The client channel is accepted at once: a client that sends EOF right after its request
  // (exec with empty stdin) would otherwise end the session before the upstream answers.
  // Input waits in the accepted stream (bounded by the SSH window) until the upstream is open.
  const open = (
    kind: 'shell' | 'exec' | 'subsystem',
    accept: () => ServerChannel | undefined,
    start: (cb: (err: Error | undefined, up: ClientChannel) => void) => void,
    mode: RelayMode,
  ) => {
    const ch = accept();
    if (!ch) return;
    ch.pause();
    openOn(ch, kind, start, mode, lazyTap(ctx, mode));
  };
  const openOn = (
    ch: ServerChannel,
    kind: 'shell' | 'exec' | 'subsystem',
    start: (cb: (err: Error | undefined, up: ClientChannel) => void) => void,
    mode: RelayMode,
    tap: LazyTap,
  ) => {
    let ended = false;
    const untrack = ctx.track({
      terminate: (reason) => {
        ended = true;
        tellUser(ctx.recording, tap.get(), ch.stderr, `\r\n[pam] session ended: ${reason}\r\n`, 'stderr');
        ch.end();
      },
    });
    const failed = (err: Error) => {
      untrack();
      ctx.recording.marker(`${kind} failed at target: ${err.message}`);
      tellUser(ctx.recording, tap.get(), ch.stderr, `[pam] ${kind} failed at the target: ${err.message}\r\n`, 'stderr');
      ch.exit(255);
      ch.end();
    };
    try {
      start((err, up) => {
        if (err) return failed(err);
        untrack();
        if (ended) return up.close();
        relay = new ChannelRelay(ctx, ch, up, mode, pty, tap.opened);
      });
    } catch (err) {
      failed(err as Error);
    }
  };

  session.on('shell', (accept) => {
    // A shell without a pty reads its commands from stdin: each line is judged there (stdin-gate.ts).
    const judged = !pty && !!ctx.onEnter;
    ctx.recording.marker(pty ? 'shell' : judged ? 'shell (no pty, stdin judged line by line)' : 'shell (no pty)');
    ctx.audit({ type: 'ssh.shell', pty: !!pty, ...(pty ? {} : { stdin: judged ? 'judged-by-line' : 'unjudged (no policy)' }) });
    const shell = (f: ForwardOptions) => (cb: (err: Error | undefined, up: ClientChannel) => void) => ctx.upstream.shell(pty ? ptyOpts(pty) : false, { env, ...f }, cb);
    open('shell', accept, (cb) => (ctx.forwards ? ctx.forwards.start(fwd, shell, cb) : shell({})(cb)), pty ? { kind: 'terminal', gate: true } : { kind: 'raw', gate: true });
  });

  session.on('exec', (accept, _reject, info) => {
    const command = info.command;
    const ch = accept();
    if (!ch) return;
    ch.pause();
    ctx.recording.marker(`exec: ${command}`);
    const scp = plainScp(command);
    // A pty exec (`ssh -t host bash`) is an interactive shell too: its lines are gated.
    // Without a pty, a shell reading commands from stdin (`ssh host bash`) has its stdin judged by line.
    const mode: RelayMode = scp ? { kind: 'transfer', label: `scp ${scp.direction} ${scp.path}`, scp } : pty ? { kind: 'terminal', gate: true } : { kind: 'raw', gate: readsCommandsFromStdin(command), exec: command };
    // The tap opens with the first notice (a hold, a denial) or with the relay, whichever comes first.
    const tap = lazyTap(ctx, mode);
    void handleExec(ctx, ch, command, tap).then((allowed) => {
      if (!allowed) return;
      if (!scp && !pty && mode.kind === 'raw' && mode.gate && ctx.onEnter) ctx.recording.marker('stdin of a shell: judged line by line');
      const exec = (f: ForwardOptions) => (cb: (err: Error | undefined, up: ClientChannel) => void) => ctx.upstream.exec(command, { env, ...(pty ? { pty: ptyOpts(pty) } : {}), ...f } as ssh2.ExecOptions, cb);
      openOn(ch, 'exec', (cb) => (ctx.forwards ? ctx.forwards.start(fwd, exec, cb) : exec({})(cb)), mode, tap);
    });
  });

  session.on('subsystem', (accept, reject, info) => {
    const name = info.name;
    ctx.recording.marker(`subsystem: ${name}`);
    // Every subsystem is judged: sftp as its own channel kind, any other as `channel: subsystem`
    // with its name as the destination (no rule: the target's default; no policy: refused).
    const { refusal: denied, rule } = name === 'sftp' ? judgeChannel(ctx, 'sftp') : judgeChannel(ctx, 'subsystem', name);
    ctx.audit({ type: denied ? 'ssh.subsystem.denied' : 'ssh.subsystem', name, ...(denied ? { why: denied } : {}), ...(rule ? { rule } : {}) });
    if (denied && ctx.policy) ctx.audit({ type: 'policy.deny', protocol: 'ssh', kind: 'channel', channel: name === 'sftp' ? 'sftp' : 'subsystem', destination: name, rule: rule ?? 'default_action', why: denied });
    if (denied) {
      ctx.recording.marker(`denied: ${denied}`);
      reject();
      return;
    }
    const mode: RelayMode = name === 'sftp' ? { kind: 'sftp' } : { kind: 'transfer', label: `subsystem ${name}` };
    open('subsystem', accept, (cb) => ctx.upstream.subsys(name, cb), mode);
  });

  session.on('close', () => relay?.clientClosed());
}

/**
 * The exec request's policy step, before anything reaches the target: the command (unless it is
 * a plain scp), then the scp channel. A review keeps the client waiting, told on stderr; closing
 * the channel cancels it. Denied: exit status 126 and the reason on stderr.
 */
async function handleExec(ctx: ChannelContext, ch: ServerChannel, command: string, tap: LazyTap): Promise<boolean> {
  const plain = plainScp(command);
  let denied: { message: string; rule?: string } | undefined;
  if (ctx.commands && !plain) {
    const cancel = new AbortController();
    const onClose = () => cancel.abort();
    ch.once('close', onClose);
    try {
      const d = await ctx.commands.decide(command, { via: 'exec', signal: cancel.signal, notify: (t) => tellUser(ctx.recording, tap.get(), ch.stderr, t.replace(/^\r\n/, ''), 'stderr') });
      if (d.action === 'deny') denied = { message: d.message, rule: d.rule };
      else if (d.allowedBy) ctx.recording.marker(`allowed (${d.allowedBy}): ${command}`);
    } catch (err) {
      denied = { message: `policy check failed: ${(err as Error).message}` };
    } finally {
      ch.off('close', onClose);
    }
  }
  if (!denied) denied = judgeScp(ctx, command);
  if (!denied && plain && ctx.policy) {
    // A plain scp is judged by the scp channel rule alone: that rule is the command's verdict.
    const { rule } = judgeChannel(ctx, 'scp', scpPathForms(plain.path, ctx.subject.login).canonical);
    ctx.recording.marker(`allowed (${rule ?? 'default_action'}): ${command}`);
  }
  ctx.audit({ type: denied ? 'ssh.exec.denied' : 'ssh.exec', command, ...(denied ? { why: denied.message, rule: denied.rule } : {}) });
  if (!denied) return true;
  ctx.recording.marker(`denied: ${command}: ${denied.message}${denied.rule ? ` (rule ${denied.rule})` : ''}`);
  tellUser(ctx.recording, tap.get(), ch.stderr, `[pam] denied: ${denied.message}\r\n`, 'stderr');
  ch.exit(126);
  ch.end();
  return false;
}

/**
 * Every scp end of the line (scp-command.ts), each operand in every form the target may resolve
 * it to, through the `scp` channel rules: refused when any form is refused. A path the parser
 * cannot read as text is refused when there is a policy (it cannot be judged).
 */
function judgeScp(ctx: ChannelContext, command: string): { message: string; rule?: string } | undefined {
  for (const end of scpEnds(command)) {
    if (end.unknown && ctx.policy) {
      const why = 'scp path cannot be judged (a variable, substitution, glob or ~user in it); name the path literally';
      ctx.audit({ type: 'policy.deny', protocol: 'ssh', kind: 'channel', channel: 'scp', destination: end.paths.join(' '), rule: 'scp-path-unknown', why });
      return { message: why, rule: 'scp-path-unknown' };
    }
    for (const path of end.paths) {
      const { canonical, forms } = scpPathForms(path, ctx.subject.login);
      // Refused when a rule refuses any form; otherwise the canonical (absolute) form decides.
      const verdicts = forms.map((form) => ({ form, ...judgeChannel(ctx, 'scp', form) }));
      const hit = verdicts.find((v) => v.refusal && v.rule) ?? verdicts.find((v) => v.form === canonical && v.refusal);
      if (!hit?.refusal) continue;
      ctx.audit({ type: 'policy.deny', protocol: 'ssh', kind: 'channel', channel: 'scp', destination: path, ...(hit.form !== path ? { normalised: hit.form } : {}), rule: hit.rule ?? 'default_action', why: hit.refusal });
      return { message: hit.refusal, rule: hit.rule };
    }
  }
  return undefined;
}

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'yash', 'fish', 'tcsh', 'csh']);

/**
 * True when some command of the exec line is a shell that takes its commands from stdin: no
 * `-c`, no script operand (`bash`, `sh -s`, `sudo bash -x`, `cat | bash`). Also `su` without `-c`.
 */
export function readsCommandsFromStdin(command: string): boolean {
  return splitCommands(command).some((c) => {
    const name = (c.argv[0] ?? '').replace(/^.*\//, '');
    const args = c.argv.slice(1);
    if (name === 'su') return !args.some((a) => a === '-c' || a.startsWith('--command') || a === '--session-command');
    if (!SHELLS.has(name)) return false;
    if (args.some((a) => /^-[a-zA-Z]*c/.test(a))) return false;
    const operands = args.filter((a) => !a.startsWith('-') && !a.startsWith('+'));
    return operands.length === 0 || args.some((a) => /^-[a-zA-Z]*s/.test(a));
  });
}

function ptyOpts(p: PtyInfo) {
  return { rows: p.rows, cols: p.cols, width: p.width, height: p.height, term: p.term, modes: p.modes as never };
}
