import { describe, expect, it } from 'vitest';
import { EnterGate, type EnterIo, type EnterVerdict, type LineSource } from '../../proxy/ssh/enter-gate.js';

/*
 * The gate is a state machine between the client's keystrokes and the target; its two seams are
 * the hook (the policy) and the LineSource (the screen). The real screen source, LineTracker,
 * has its own suite (line-tracker.test.ts) and the whole path runs against sshd in
 * ssh-policy.test.ts; here the screen is a plain echo buffer we control, so each step of the
 * gate (hold at Enter, wait for the prompt, interrupt, backpressure) can be observed.
 */

const tick = () => new Promise((r) => setImmediate(r));

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A target that echoes: the screen line is what was forwarded since the last Enter. */
class Screen implements LineSource {
  text = '';
  echo = true;
  fullScreen = false;
  /** Prompts shown and not yet waited for; each Enter's wait consumes one. */
  private prompts = 0;
  private waiter: (() => void) | undefined;
  promptWaits = 0;
  interrupts = 0;
  disposed = false;
  interrupted(): void {
    this.interrupts++;
  }
  /** The whole screen row, when a test sets one (the prompt end then sits inside it). */
  row: string | undefined;
  rowLine(): string {
    return this.row ?? '';
  }
  withoutPrompt(line: string): string | undefined {
    return this.row !== undefined && line.startsWith('$ ') ? line.slice(2) : undefined;
  }
  input(data: Buffer): void {
    if (this.echo) this.text += data.toString('utf8');
  }
  output(): void {}
  line(): string {
    return this.text;
  }
  reset(): void {
    this.text = '';
  }
  skip(): boolean {
    return this.fullScreen;
  }
  promptReady(signal: AbortSignal): Promise<void> {
    this.promptWaits++;
    if (this.prompts > 0) {
      this.prompts--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.waiter = () => { this.prompts--; resolve(); };
      signal.addEventListener('abort', () => { this.waiter = undefined; resolve(); }, { once: true });
    });
  }
  /** The next prompt appears. */
  showPrompt(): void {
    this.prompts++;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
  dispose(): void {
    this.disposed = true;
  }
}

function setup(hook: (line: string, io: EnterIo) => Promise<EnterVerdict>) {
  const screen = new Screen();
  const target: Buffer[] = [];
  const client: string[] = [];
  const verdicts: Array<[string, EnterVerdict]> = [];
  const flow: string[] = [];
  const gate = new EnterGate(hook, screen, {
    toTarget: (d) => target.push(Buffer.from(d)),
    toClient: (t) => client.push(t),
    pauseClient: () => flow.push('pause'),
    resumeClient: () => flow.push('resume'),
    onVerdict: (l, v) => verdicts.push([l, v]),
  });
  const sent = () => Buffer.concat(target).toString('latin1');
  return { gate, screen, target, client, verdicts, flow, sent };
}

describe('EnterGate', () => {
  it('forwards keystrokes at once and holds the Enter until the hook allows it', async () => {
    const decision = deferred<EnterVerdict>();
    const lines: string[] = [];
    const t = setup((line) => (lines.push(line), decision.promise));
    t.gate.input(Buffer.from('ls -l'));
    await tick();
    expect(t.sent()).toBe('ls -l');
    t.gate.input(Buffer.from('\r'));
    await tick();
    expect(lines).toEqual(['ls -l']);
    expect(t.sent()).toBe('ls -l'); // the Enter is held
    decision.resolve({ action: 'allow' });
    await tick();
    expect(t.sent()).toBe('ls -l\r');
    expect(t.verdicts).toEqual([['ls -l', { action: 'allow' }]]);
  });

  it('on deny clears the line at the target, never sends its Enter, and tells the user why', async () => {
    const t = setup(async () => ({ action: 'deny', message: 'rm -rf is not allowed', rule: 'no-rm' }));
    t.gate.input(Buffer.from('rm -rf /\r'));
    await tick();
    await tick();
    // Ctrl-G Ctrl-E Ctrl-U wipes the typed text, then a bare CR for a fresh prompt.
    expect(t.sent()).toBe('rm -rf /\x07\x05\x15\r');
    expect(t.client).toEqual(['\r\n[pam] denied: rm -rf is not allowed']);
    expect(t.screen.text).toBe('');
  });

  it('judges type-ahead line by line, each only after the previous prompt is on screen', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), line.startsWith('rm') ? { action: 'deny', message: 'no' } : { action: 'allow' }));
    // A pasted block: one chunk with three lines.
    t.gate.input(Buffer.from('echo a\rrm x\recho b\r'));
    await tick();
    expect(lines).toEqual(['echo a']);
    // Nothing of the second line reaches the target before the first command's prompt.
    expect(t.sent()).toBe('echo a\r');
    t.screen.showPrompt();
    await tick();
    await tick();
    expect(lines).toEqual(['echo a', 'rm x']);
    expect(t.sent()).toBe('echo a\rrm x\x07\x05\x15\r');
    t.screen.showPrompt();
    await tick();
    await tick();
    expect(lines).toEqual(['echo a', 'rm x', 'echo b']);
    expect(t.sent()).toBe('echo a\rrm x\x07\x05\x15\recho b\r');
  });

  it('treats LF like CR, and an empty line passes without asking the hook', async () => {
    let calls = 0;
    const t = setup(async () => (calls++, { action: 'allow' }));
    t.gate.input(Buffer.from('\n'));
    await tick();
    expect(calls).toBe(0);
    expect(t.sent()).toBe('\n');
    t.screen.showPrompt();
    t.gate.input(Buffer.from('id\n'));
    await tick();
    await tick();
    expect(calls).toBe(1);
    expect(t.sent()).toBe('\nid\n');
  });

  it('an interrupt key aborts a pending review and the line is denied by the hook\'s answer', async () => {
    let seen: AbortSignal | undefined;
    const t = setup((_line, io) => {
      seen = io.signal;
      io.notify('waiting for approval');
      return new Promise((resolve) => io.signal.addEventListener('abort', () => resolve({ action: 'deny', message: 'review cancelled' }), { once: true }));
    });
    t.gate.input(Buffer.from('sudo reboot\r'));
    await tick();
    expect(seen?.aborted).toBe(false);
    expect(t.client).toEqual(['waiting for approval']);
    t.gate.input(Buffer.from([0x03])); // Ctrl-C
    await tick();
    await tick();
    expect(seen?.aborted).toBe(true);
    expect(t.client.at(-1)).toBe('\r\n[pam] denied: review cancelled');
    expect(t.sent().startsWith('sudo reboot\x07\x05\x15\r')).toBe(true);
    expect(t.sent()).not.toContain('sudo reboot\r');
  });

  it('an interrupt ends the wait for a prompt that never comes', async () => {
    const t = setup(async () => ({ action: 'allow' }));
    t.gate.input(Buffer.from('sleep 100\r'));
    await tick();
    t.gate.input(Buffer.from('ls'));
    await tick();
    expect(t.sent()).toBe('sleep 100\r'); // 'ls' waits for the prompt
    t.gate.input(Buffer.from([0x03]));
    await tick();
    await tick();
    expect(t.sent()).toBe('sleep 100\rls\x03');
  });

  it('keys after a signal key wait for the target\'s answer to it (bash drops a key read while it handles SIGINT)', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), { action: 'allow' }));
    t.gate.input(Buffer.from('echo pending\x03xrm f\r'));
    await tick();
    expect(t.sent()).toBe('echo pending\x03');
    expect(t.screen.interrupts).toBe(1);
    t.screen.showPrompt();
    await tick();
    await tick();
    expect(t.sent()).toBe('echo pending\x03xrm f\r');
    // Ctrl-D is not a signal: what follows it is not held.
    t.screen.showPrompt();
    t.gate.input(Buffer.from('x\x04y'));
    await tick();
    await tick();
    expect(t.sent().endsWith('x\x04y')).toBe(true);
    expect(t.screen.interrupts).toBe(1);
  });

  it('Ctrl-O runs the line in readline (operate-and-get-next): it is held and judged like Enter', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), line.startsWith('rm') ? { action: 'deny', message: 'no' } : { action: 'allow' }));
    t.gate.input(Buffer.from('rm x\x0f'));
    await tick();
    await tick();
    expect(lines).toEqual(['rm x']);
    expect(t.sent()).toBe('rm x\x07\x05\x15\r');
    t.screen.showPrompt();
    t.gate.input(Buffer.from('ls\x0f'));
    await tick();
    await tick();
    expect(t.sent().endsWith('ls\x0f')).toBe(true);
  });

  it('keys that run the line without Enter (Ctrl-X Ctrl-E, Esc Ctrl-E, Esc #, Ctrl-X () become an abort, denied and told', async () => {
    const t = setup(async () => ({ action: 'allow' }));
    t.gate.input(Buffer.from('rm x\x18\x05'));
    t.gate.input(Buffer.from('\x1b'));
    t.gate.input(Buffer.from('\x05')); // Esc and Ctrl-E in two writes
    t.gate.input(Buffer.from('\x1b1\x1b#\x18('));
    await tick();
    expect(t.sent()).toBe('rm x\x18\x07\x1b\x07\x1b1\x1b\x07\x18\x07');
    expect(t.verdicts.map(([l, v]) => [l, v.action])).toEqual([['(key) Ctrl-X Ctrl-E', 'deny'], ['(key) Esc Ctrl-E', 'deny'], ['(key) Esc #', 'deny'], ['(key) Ctrl-X (', 'deny']]);
    expect(t.client.filter((c) => c.includes('runs the line without Enter'))).toHaveLength(4);
    // A plain Ctrl-E is end-of-line; `#` and `(` are characters.
    t.gate.input(Buffer.from('х\x05 #(x)'));
    await tick();
    expect(Buffer.concat(t.target).toString('utf8').endsWith('х\x05 #(x)')).toBe(true);
    expect(t.verdicts).toHaveLength(4);
  });

  it('inside a trusted full-screen program the same keys pass untouched', async () => {
    const t = setup(async () => ({ action: 'allow' }));
    t.screen.fullScreen = true;
    t.gate.input(Buffer.from('\x18\x05\x1b\x05'));
    await tick();
    expect(t.sent()).toBe('\x18\x05\x1b\x05');
    expect(t.verdicts).toEqual([]);
  });

  it('inside a Ctrl-R search the found line is judged, every reading of it, and not the search prompt', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), line.startsWith('rm') ? { action: 'deny', message: 'no' } : { action: 'allow' }));
    t.screen.echo = false;
    t.gate.input(Buffer.from("\x12x': "));
    t.screen.text = "(reverse-i-search)`x': ': rm f";
    t.gate.input(Buffer.from('\r'));
    await tick();
    await tick();
    expect(lines).toEqual(["': rm f", 'rm f']);
    expect(t.verdicts.at(-1)![1].action).toBe('deny');
  });

  it('a line that only looks like a search display (no Ctrl-R typed) is judged as it stands', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), { action: 'allow' }));
    t.gate.input(Buffer.from("rm f #(reverse-i-search)`': ls\r"));
    await tick();
    await tick();
    expect(lines[0]).toBe("rm f #(reverse-i-search)`': ls");
  });

  it('the whole row behind a known prompt is judged too: a prompt end taken too far right hides nothing', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), line.startsWith('rm') ? { action: 'deny', message: 'no' } : { action: 'allow' }));
    t.screen.echo = false;
    t.screen.text = 'nary';
    t.screen.row = '$ rm /tmp/canary';
    t.gate.input(Buffer.from('\r'));
    await tick();
    await tick();
    expect(lines).toEqual(['nary', 'rm /tmp/canary']);
    expect(t.verdicts).toEqual([['rm /tmp/canary', { action: 'deny', message: 'no' }]]);
    // Even right of all of it: the reading from the prompt end is empty, the row is not.
    t.screen.showPrompt();
    t.screen.text = '';
    t.gate.input(Buffer.from('\r'));
    await tick();
    await tick();
    expect(lines.at(-1)).toBe('rm /tmp/canary');
    expect(t.verdicts.at(-1)).toEqual(['rm /tmp/canary', { action: 'deny', message: 'no' }]);
  });

  it('the wait after a signal key ends even if no prompt ever comes (a program that ignores it)', async () => {
    const t = setup(async () => ({ action: 'allow' }));
    t.gate.input(Buffer.from('\x03ls'));
    await tick();
    expect(t.sent()).toBe('\x03');
    await new Promise((r) => setTimeout(r, 2300));
    expect(t.sent()).toBe('\x03ls');
  });

  it('Tab on a line with a substitution is judged first (zsh runs it to expand the word); a plain Tab goes at once', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), /rm/.test(line) ? { action: 'deny', message: 'no rm' } : { action: 'allow' }));
    t.gate.input(Buffer.from('cd /us\t'));
    await tick();
    expect(t.sent()).toBe('cd /us\t');
    expect(lines).toEqual([]);
    t.gate.input(Buffer.from('\x15echo $(rm f)\t'));
    await tick();
    await tick();
    expect(lines).toEqual(['echo $(rm f)']);
    expect(t.sent()).toBe('cd /us\t\x15echo $(rm f)'); // the Tab is not sent
    expect(t.client.at(-1)).toContain('[pam] denied: no rm (Tab can run the substitutions on this line)');
    expect(t.verdicts.at(-1)![1].action).toBe('deny');
    t.gate.input(Buffer.from('\x15echo $(date)\t'));
    await tick();
    await tick();
    expect(t.sent().endsWith('echo $(date)\t')).toBe(true);
  });

  it('Esc a and Esc A run the line in zsh: held and judged like Enter', async () => {
    const lines: string[] = [];
    const t = setup(async (line) => (lines.push(line), { action: 'deny', message: 'no' }));
    t.gate.input(Buffer.from('rm x\x1ba'));
    await tick();
    await tick();
    expect(lines).toEqual(['rm x\x1b']);
    expect(t.sent()).toBe('rm x\x1b\x07\x05\x15\r');
  });

  it('a hook that throws denies the line (fail closed)', async () => {
    const t = setup(async () => { throw new Error('engine unavailable'); });
    t.gate.input(Buffer.from('whoami\r'));
    await tick();
    await tick();
    expect(t.sent()).toBe('whoami\x07\x05\x15\r');
    expect(t.client).toEqual(['\r\n[pam] denied: policy check failed: engine unavailable']);
  });

  it('passes Enter unchecked while a full-screen program runs', async () => {
    let calls = 0;
    const t = setup(async () => (calls++, { action: 'deny', message: 'x' }));
    t.screen.fullScreen = true;
    t.gate.input(Buffer.from(':wq\r'));
    await tick();
    expect(calls).toBe(0);
    expect(t.sent()).toBe(':wq\r');
  });

  it('judges unechoed input from the keystrokes, flagged so it is never shown back', async () => {
    const calls: Array<[string, boolean | undefined]> = [];
    const t = setup(async (line, io) => (calls.push([line, io.unechoed]), { action: 'allow' }));
    t.screen.echo = false; // stty -echo: the screen line stays empty
    t.gate.input(Buffer.from('rm -rf /tmpx\x7f\r'));
    await tick();
    await tick();
    expect(calls).toEqual([['rm -rf /tmp', true]]);
    // An echoed line is judged from the screen and not flagged.
    t.screen.echo = true;
    t.screen.showPrompt();
    t.gate.input(Buffer.from('id\r'));
    await tick();
    await tick();
    expect(calls[1]).toEqual(['id', undefined]);
  });

  it('keys that read differently from the screen line meet the rules too: a decoy on screen does not hide them', async () => {
    const calls: Array<[string, boolean | undefined, boolean | undefined]> = [];
    const t = setup(async (line, io) => {
      calls.push([line, io.unechoed, io.rulesOnly]);
      return /forbidden/.test(line) ? { action: 'deny', message: 'Forbidden marker.', rule: 'no-forbidden' } : { action: 'allow', allowedBy: 'default_action' };
    });
    t.screen.echo = false; // stty -echo, then a background job prints a decoy at the cursor
    t.gate.input(Buffer.from('touch x-forbidden'));
    await tick();
    t.screen.text = 'echo decoy';
    t.gate.input(Buffer.from('\r'));
    await tick();
    await tick();
    expect(calls).toEqual([['echo decoy', undefined, undefined], ['touch x-forbidden', true, true]]);
    expect(t.sent()).toBe('touch x-forbidden\x07\x05\x15\r');
    // Told as not echoed: neither the decoy nor the keys.
    expect(t.verdicts).toEqual([['', { action: 'deny', message: 'Forbidden marker.', rule: 'no-forbidden' }]]);
  });

  it('keys that match the screen are judged once; keys the rules allow keep the screen verdict; an approved line is not read again', async () => {
    const calls: string[] = [];
    let approved = false;
    const t = setup(async (line) => (calls.push(line), approved ? { action: 'allow', approved: true } : { action: 'allow', allowedBy: 'ok-rule' }));
    t.gate.input(Buffer.from('ls  -l \r'));
    await tick();
    await tick();
    expect(calls).toEqual(['ls  -l ']);
    // Tab completion: the screen shows more than the keys.
    t.screen.showPrompt();
    t.gate.input(Buffer.from('cat /et\t'));
    await tick();
    t.screen.text = 'cat /etc/';
    t.gate.input(Buffer.from('\r'));
    await tick();
    await tick();
    expect(calls.slice(1)).toEqual(['cat /etc/', 'cat /et']);
    expect(t.verdicts[1]).toEqual(['cat /etc/', { action: 'allow', allowedBy: 'ok-rule' }]);
    approved = true;
    t.screen.showPrompt();
    t.gate.input(Buffer.from('touch x-rev\t'));
    await tick();
    t.screen.text = 'touch x-review';
    t.gate.input(Buffer.from('\r'));
    await tick();
    await tick();
    expect(calls.slice(3)).toEqual(['touch x-review']);
  });

  it('pauses the client when more than 64 KiB waits behind a held Enter, and resumes once drained', async () => {
    const decision = deferred<EnterVerdict>();
    const t = setup(() => decision.promise);
    t.gate.input(Buffer.from('cat\r'));
    await tick();
    t.gate.input(Buffer.alloc(40 * 1024, 0x61));
    expect(t.flow).toEqual([]);
    t.gate.input(Buffer.alloc(40 * 1024, 0x62));
    expect(t.flow).toEqual(['pause']);
    decision.resolve({ action: 'allow' });
    await tick();
    t.screen.showPrompt();
    await tick();
    await tick();
    expect(t.flow).toEqual(['pause', 'resume']);
    expect(t.sent().length).toBe(4 + 80 * 1024);
  });

  it('forwards nothing after dispose, and a verdict arriving late sends no Enter', async () => {
    const decision = deferred<EnterVerdict>();
    const t = setup(() => decision.promise);
    t.gate.input(Buffer.from('reboot\r'));
    await tick();
    t.gate.dispose();
    expect(t.screen.disposed).toBe(true);
    decision.resolve({ action: 'allow' });
    await tick();
    t.gate.input(Buffer.from('more'));
    await tick();
    expect(t.sent()).toBe('reboot');
    expect(t.verdicts).toEqual([]);
  });
});

describe('openCommand (stdin gate: one command over several lines)', () => {
  it('keeps reading while a quote is open or a line ends in a backslash', async () => {
    const { openCommand } = await import('../../proxy/ssh/stdin-gate.js');
    expect(openCommand('touch x\n')).toBe(false);
    expect(openCommand("touch 'a\n")).toBe(true);
    expect(openCommand("touch 'a\nb'\n")).toBe(false);
    expect(openCommand('touch a\\\n')).toBe(true);
    expect(openCommand('echo "it\'s"\n')).toBe(false);
    expect(openCommand("echo $'a\\'b'\n")).toBe(false);
    expect(openCommand("echo x # it's a comment\n")).toBe(false);
    expect(openCommand('echo "a\n')).toBe(true);
  });
});
