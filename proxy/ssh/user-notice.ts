/**
 * The proxy's own lines to the user of a session channel: a denial (`[pam] denied: …`), a hold
 * and its approval, a session ended by a kill, a revocation or an expiry, a shutdown notice, a
 * channel that failed at the target. The user sees them in the terminal, so the recording keeps
 * them too: the same text as output of the stream it went to (stdout for a pty, stderr
 * otherwise), and a marker with the same time naming it, so the replay shows it where the user
 * saw it and the markers panel seeks there. The text never goes through the echo check of
 * held keystrokes (channel-tap.ts): it is not the target's output.
 */
import type { SshRecorder } from '../../recorder/ssh-recorder.js';
import { openTap, type Tap } from './raw-tap.js';
import type { ChannelContext, RelayMode } from './channels.types.js';

/** Where the text goes to the client: a channel (stdout) or its stderr. */
interface ClientStream {
  write(text: string): unknown;
}

/** The marker for a notice: its lines, trimmed, joined (`[pam] … / [pam] …`). */
export function noticeLabel(text: string): string {
  return text.split(/\r?\n|\r/).map((l) => l.trim()).filter(Boolean).join(' / ');
}

/**
 * Writes `text` to the client and records it (marker, then the text as output, one moment).
 * `tap` absent: the channel has nothing recording its bytes (a cast recording's sftp channel),
 * the marker alone keeps it. A channel already gone gets nothing and the recording keeps it.
 */
export function tellUser(rec: SshRecorder, tap: Tap | undefined, to: ClientStream, text: string, stream: 'stdout' | 'stderr'): void {
  const at = Date.now();
  const label = noticeLabel(text);
  if (label) rec.marker(label, at);
  tap?.notice(text, stream, at);
  try {
    to.write(text);
  } catch { /* channel already gone */ }
}

/** A channel's recording tap, opened on first use: a notice before the relay exists (an exec's hold or denial), or the relay. */
export interface LazyTap {
  get(): Tap | undefined;
  readonly opened: Tap | undefined;
}

export function lazyTap(ctx: ChannelContext, mode: RelayMode): LazyTap {
  let tap: Tap | undefined;
  let tried = false;
  return {
    get: () => {
      if (!tried) tap = openTap(ctx.recording, mode, { stdinJudged: mode.kind === 'raw' && mode.gate && !!ctx.onEnter });
      tried = true;
      return tap;
    },
    get opened() {
      return tap;
    },
  };
}
