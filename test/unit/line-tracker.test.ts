import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fullScreenProgram, historySearchReadings, LineTracker } from '../../proxy/ssh/line-tracker.js';

/** Plays a session the way bash + readline would echo it: user keys go to feedInput, echo to feedOutput. */
class Session {
  constructor(readonly t: LineTracker) {}
  out(s: string) {
    this.t.feedOutput(Buffer.from(s));
    return this;
  }
  /** A key the user typed, and what the shell echoed for it. */
  key(input: string, echo: string = input) {
    this.t.feedInput(Buffer.from(input));
    this.t.feedOutput(Buffer.from(echo));
    return this;
  }
  type(text: string) {
    for (const ch of text) this.key(ch);
    return this;
  }
  /** Enter: read the line, then the shell echoes CRLF and the command runs. */
  async enter(output = '', prompt = '$ ') {
    const line = await drive(this.t.currentLine());
    this.out('\r\n' + output + prompt);
    return line;
  }
}

/**
 * The tracker's settle waits and xterm's parser both run on timers, and the clock here is a fake
 * one: a test moves time itself, so nothing depends on how busy the machine is.
 */
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

/** Moves fake time forward until `p` settles (at most 10 s of fake time: a tracker waits 1 s at most). */
async function drive<T>(p: Promise<T>): Promise<T> {
  let settled = false;
  p.then(() => (settled = true), () => (settled = true));
  for (let ms = 0; !settled && ms < 10_000; ms += 5) await vi.advanceTimersByTimeAsync(5);
  return p;
}

/** True once `p` has resolved. */
function watch(p: Promise<unknown>): { readonly done: boolean } {
  const w = { done: false };
  void p.then(() => (w.done = true));
  return w;
}

const trackers: LineTracker[] = [];
const session = (opts: ConstructorParameters<typeof LineTracker>[0] = {}) => {
  const t = new LineTracker({ settleMs: 5, ...opts });
  trackers.push(t);
  return new Session(t);
};
afterEach(() => {
  for (const t of trackers.splice(0)) t.dispose();
  vi.useRealTimers();
});

describe('LineTracker', () => {
  it('reads a typed line after the prompt, and the next one after the next prompt', async () => {
    const s = session().out('Welcome to host\r\nLast login: never\r\nuser@host:~$ ');
    s.type('ls -la');
    expect(await s.enter('total 0\r\nfile-a  file-b\r\n', 'user@host:~$ ')).toBe('ls -la');
    s.type('whoami');
    expect(await s.enter()).toBe('whoami');
  });

  it('sees backspace and Ctrl-U as the shell draws them', async () => {
    const s = session().out('$ ');
    s.type('rm -rf /tmpx').key('\x7f', '\b \b');
    expect(await s.enter()).toBe('rm -rf /tmp');
    s.type('rm -rf /').key('\x15', '\r\x1b[K$ ').type('ls');
    expect(await s.enter()).toBe('ls');
  });

  it('sees tab completion text inserted by the shell', async () => {
    const s = session().out('$ ');
    s.type('cat /etc/pas').key('\t', 'swd ');
    expect(await s.enter()).toBe('cat /etc/passwd');
  });

  it('sees history recall (Up arrow redraws the line)', async () => {
    const s = session().out('$ ');
    s.type('rm -rf /');
    await s.enter('', '$ ');
    s.key('\x1b[A', 'rm -rf /');
    expect(await s.enter()).toBe('rm -rf /');
    s.type('echo hi').key('\x1b[A', '\r\x1b[K$ rm -rf /');
    expect(await s.enter()).toBe('rm -rf /');
  });

  it('sees cursor edits in the middle of the line', async () => {
    const s = session().out('$ ');
    // "rm -rf /tmp", cursor left 4 times, insert "x": readline prints x/tmp and moves back.
    s.type('rm -rf /tmp').key('\x1b[D\x1b[D\x1b[D\x1b[D', '\b\b\b\b').key('x', 'x/tmp\b\b\b\b');
    expect(await s.enter()).toBe('rm -rf x/tmp');
  });

  it('joins a line wrapped by the terminal', async () => {
    const s = session({ cols: 20 }).out('prompt$ ');
    const cmd = 'echo aaaaaaaaaa bbbbbbbbbb cccccccccc; rm -rf /';
    s.type(cmd);
    expect(await s.enter()).toBe(cmd);
  });

  it('joins a line the shell wrapped itself with CR LF at the margin', async () => {
    const s = session({ cols: 10 }).out('$ ');
    s.type('rm -rf /').out('\r\n'); // 8 + 2 = 10 columns: full row, then the shell moves down
    s.type('etc');
    expect(await s.enter()).toBe('rm -rf /etc');
  });

  it('keeps the prompt through scrolling output', async () => {
    const s = session({ rows: 5 }).out('$ ');
    s.type('seq 100');
    await s.enter(Array.from({ length: 100 }, (_, i) => `${i + 1}\r\n`).join(''));
    s.type('uptime');
    expect(await s.enter()).toBe('uptime');
  });

  it('finds the prompt again after Ctrl-L clears the screen', async () => {
    const s = session().out('lots\r\nof\r\noutput\r\nuser@h:~$ ');
    s.type('ls').key('\x0c', '\x1b[H\x1b[2Juser@h:~$ ls');
    s.type(' -l');
    expect(await s.enter()).toBe('ls -l');
  });

  it('reports full-screen programs', async () => {
    const s = session().out('$ ');
    s.type('vim x');
    expect(await s.enter('\x1b[?1049h\x1b[H\x1b[2J~\r\n~', '')).toBe('vim x');
    s.key(':q!', ':q!');
    await drive(s.t.currentLine());
    expect(s.t.inAlternateScreen).toBe(true);
    s.out('\x1b[?1049l$ ');
    s.type('ls');
    expect(await drive(s.t.currentLine())).toBe('ls');
    expect(s.t.inAlternateScreen).toBe(false);
  });

  it('an alternate screen switched on by a printed sequence earns no trust; one a full-screen program opened does', async () => {
    const screens: string[] = [];
    const s = session({ onScreen: (c) => screens.push(`${c.mode}:${c.owner ?? '-'}`) }).out('$ ');
    s.type("printf '\\033[?1049h'");
    const l1 = await s.enter('\x1b[?1049h$ ', '');
    s.t.allowed(l1);
    await vi.advanceTimersByTimeAsync(30);
    expect(s.t.inAlternateScreen).toBe(true);
    expect(s.t.inTrustedFullScreen).toBe(false);
    s.type('rm x');
    expect(await drive(s.t.currentLine())).toBe('rm x');
    s.out('\r\n\x1b[?1049l$ ');
    s.type('vim x');
    s.t.allowed(await drive(s.t.currentLine()));
    s.out('\r\n\x1b[?1049h~');
    await vi.advanceTimersByTimeAsync(30);
    expect(s.t.inTrustedFullScreen).toBe(true);
    expect(screens).toEqual(['alternate:-', 'normal:-', 'alternate:vim']);
    expect(fullScreenProgram('sudo vim /etc/x')).toBe('vim');
    expect(fullScreenProgram('vim x; printf y')).toBeUndefined();
    expect(fullScreenProgram('watch less x')).toBeUndefined();
    expect(fullScreenProgram('tmux')).toBeUndefined();
  });

  it('cuts a known prompt off the front of a misread line', async () => {
    const s = session().out('root@web:~# ');
    s.type('ls');
    expect(await drive(s.t.currentLine())).toBe('ls');
    expect(s.t.withoutPrompt('root@web:~# rm x')).toBe('rm x');
    expect(s.t.withoutPrompt('rm x')).toBeUndefined();
  });

  it('works without input notifications once output settles after Enter', async () => {
    const t = new LineTracker({ settleMs: 5, promptSettleMs: 30 });
    trackers.push(t);
    t.feedOutput('$ ');
    await vi.advanceTimersByTimeAsync(80); // past promptSettleMs: the prompt end is taken provisionally
    t.feedOutput('ls -l');
    expect(await drive(t.currentLine())).toBe('ls -l');
  });

  it('waits for the echo of the last keys before reading', async () => {
    const s = session({ settleMs: 30 }).out('$ ');
    s.type('rm -rf');
    await vi.advanceTimersByTimeAsync(5); // the next keys come a little after the last echo
    s.t.feedInput(' /');
    // Enter is pressed before the echo of ' /' is in: well past settleMs the read still waits for it.
    const line = s.t.currentLine();
    const read = watch(line);
    await vi.advanceTimersByTimeAsync(200);
    expect(read.done).toBe(false);
    s.t.feedOutput(' /');
    expect(await drive(line)).toBe('rm -rf /');
  });

  it('follows resize', async () => {
    const s = session({ cols: 20 }).out('$ ');
    s.t.resize(120, 40);
    const cmd = 'x'.repeat(100);
    s.type(cmd);
    expect(await s.enter()).toBe(cmd);
  });
});

describe('historySearchReadings', () => {
  it('reads the line a Ctrl-R search found, for every place the search text could end', () => {
    expect(historySearchReadings("(reverse-i-search)`rm': rm -rf /tmp/x")).toEqual(['rm -rf /tmp/x']);
    expect(historySearchReadings("everse-i-search)`rm': rm x")).toEqual(['rm x']); // front cut at the old prompt end
    expect(historySearchReadings("(failed reverse-i-search)`rmz': rm x")).toEqual(['rm x']);
    expect(historySearchReadings("(i-search)`a': ': b")).toEqual(["': b", 'b']);
    expect(historySearchReadings('echo plain line')).toEqual([]);
    expect(historySearchReadings("(reverse-i-search)`': ")).toEqual([]);
  });
});
