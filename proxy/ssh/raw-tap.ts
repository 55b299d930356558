import type { RawChannel, SshRecorder } from '../../recorder/ssh-recorder.js';
import { ChannelTap } from './channel-tap.js';
import type { RelayMode } from './channels.types.js';

/** What a relay feeds the recording with, per direction. */
export interface Tap {
  output(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
  input(chunk: Buffer): void;
  flush(): void;
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
}

/**
 * The tap for a channel: a pty channel is a terminal (echo-masked keystrokes); any other channel
 * is raw when the connection's recording is raw (it becomes raw here if no channel chose before).
 * In an asciicast recording (a pty channel came first) a no-pty exec or shell is recorded as
 * terminal text as before, and scp/sftp/subsystem channels by their markers only.
 */
export function openTap(rec: SshRecorder, mode: RelayMode): Tap | undefined {
  if (mode.kind === 'terminal') return new TerminalTap(new ChannelTap(rec.terminal({ kind: 'terminal' }), { maskUnechoed: true }));
  const raw = rec.rawChannel({ kind: mode.kind, ...(mode.kind === 'transfer' ? { label: mode.label } : {}) });
  if (raw) return new RawTap(raw);
  if (mode.kind === 'raw') return new TerminalTap(new ChannelTap(rec.terminal({ kind: 'raw' }), { maskUnechoed: false }));
  return undefined;
}
