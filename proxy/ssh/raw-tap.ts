import type { RawChannel, SshRecorder } from '../../recorder/ssh-recorder.js';
import { transferLabel } from '../../recorder/raw-reader.js';
import { ChannelTap } from './channel-tap.js';
import type { RelayMode } from './channels.types.js';
import type { FileDigest } from './file-content.js';
import { describeSftpOp, type SftpOp } from './sftp-audit.js';

/** What a relay feeds the recording with, per direction. */
export interface Tap {
  output(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
  input(chunk: Buffer): void;
  flush(): void;
  /**
   * A line the proxy itself showed the user (user-notice.ts): recorded as output of the stream
   * it went to, at `at`, without being taken for the target's echo.
   */
  notice(text: string, stream: 'stdout' | 'stderr', at: number): void;
  /** A file moved on this channel (raw recordings keep it as a TRANSFER frame). */
  transfer?(record: TransferRecord): void;
}

/** What a recording keeps of each transferred file. */
export interface TransferRecord {
  path: string;
  direction: 'upload' | 'download';
  size: number;
  sha256?: string;
  /** Why there is no SHA-256 (content seen with gaps or overlaps). */
  why?: string;
  via: 'sftp' | 'scp' | 'rsync';
  /** rsync: the file's name in rsync's own file list (path is where it lands or came from on the target). */
  name?: string;
  /** The content is kept in recordings/transfers/SHA256. */
  stored?: boolean;
}

/**
 * Records a channel without a pty losslessly: every chunk goes to the raw recording as it is,
 * per stream (recorder/raw-writer.ts). No decoding, no masking: there is no terminal echo to
 * tell typed secrets by, and an auditor needs the exact bytes.
 */
export class RawTap implements Tap {
  constructor(private readonly ch: RawChannel) {}

  output(chunk: Buffer): void {
    this.ch.data('stdout', chunk);
  }

  stderr(chunk: Buffer): void {
    this.ch.data('stderr', chunk);
  }

  input(chunk: Buffer): void {
    this.ch.data('stdin', chunk);
  }

  flush(): void {}

  notice(text: string, stream: 'stdout' | 'stderr', at: number): void {
    this.ch.data(stream, Buffer.from(text, 'utf8'), at);
  }

  transfer(record: TransferRecord): void {
    this.ch.transfer({ ...record });
  }
}

/** ChannelTap (terminal text, echo masking) seen as a Tap: stderr joins the terminal output. */
class TerminalTap implements Tap {
  constructor(private readonly tap: ChannelTap) {}
  output(chunk: Buffer): void {
    this.tap.output(chunk);
  }
  stderr(chunk: Buffer): void {
    this.tap.output(chunk);
  }
  input(chunk: Buffer): void {
    this.tap.input(chunk);
  }
  flush(): void {
    this.tap.flush();
  }
  notice(text: string, _stream: 'stdout' | 'stderr', at: number): void {
    this.tap.notice(text, at);
  }
}

/**
 * The tap for a channel: a pty channel is a terminal (echo-masked keystrokes); any other channel
 * is raw when the connection's recording is raw (it becomes raw here if no channel chose before).
 * In an asciicast recording (a pty channel came first) the channels without a pty go raw into the
 * connection's side recording (ssh-recorder.ts); only without one is a no-pty exec or shell
 * recorded as terminal text, and scp/sftp/subsystem channels by their markers.
 */
export function openTap(rec: SshRecorder, mode: RelayMode, opts: { stdinJudged?: boolean } = {}): Tap | undefined {
  if (mode.kind === 'terminal') return new TerminalTap(new ChannelTap(rec.terminal({ kind: 'terminal' }), { maskUnechoed: true }));
  const raw = rec.rawChannel({ kind: mode.kind, ...(mode.kind === 'transfer' ? { label: mode.label } : mode.kind === 'raw' && mode.exec ? { label: `exec: ${mode.exec}` } : {}), ...(opts.stdinJudged ? { stdin: 'judged' as const } : {}) });
  if (raw) return new RawTap(raw);
  if (mode.kind === 'raw') return new TerminalTap(new ChannelTap(rec.terminal({ kind: 'raw' }), { maskUnechoed: false }));
  return undefined;
}

/**
 * Records one transferred file: its TRANSFER frame in a raw recording, a marker otherwise, and
 * a marker if its content was to be kept and could not be.
 */
export function recordTransfer(rec: SshRecorder, tap: Tap | undefined, t: Omit<TransferRecord, 'size' | 'sha256' | 'why' | 'stored'>, digest: FileDigest & { stored?: Promise<void> }): void {
  const record: TransferRecord = {
    ...t, size: digest.size, ...(digest.sha256 ? { sha256: digest.sha256 } : {}), ...(digest.why ? { why: digest.why } : {}), ...(digest.stored ? { stored: true } : {}),
  };
  if (tap?.transfer) tap.transfer(record);
  else rec.marker(transferLabel(record as unknown as Record<string, unknown>));
  digest.stored?.catch((err: Error) => rec.marker(`transfer content of ${t.path} not kept: ${err.message}`));
}

/** An SFTP operation: its marker as before, and for uploads and downloads the transfer record. */
export function recordSftpOp(rec: SshRecorder, tap: Tap | undefined, op: SftpOp): void {
  rec.marker(describeSftpOp(op));
  if (op.digest && (op.op === 'upload' || op.op === 'download')) recordTransfer(rec, tap, { path: op.path, direction: op.op, via: 'sftp' }, op.digest);
}
