/**
 * The command policy inside live SSH sessions, against a real OpenSSH sshd through the proxy.
 * Every bypass case is checked AT THE TARGET: a canary file that a denied command would have
 * removed must still be there, a marker file a denied command would have created must not be.
 * Cases a shell filter honestly cannot stop are in the corpus too, asserting what happens today
 * (policies/README.md, "What a command filter cannot stop").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import ssh2 from 'ssh2';
import { exec } from '../helpers/ssh-exec.js';
import type { TestControlPlane } from '../helpers/control-plane.js';
import { waitFor, type TestSshd } from '../helpers/sshd.js';
import { startSshPolicyStack, type SshPolicyStack } from '../helpers/ssh-policy-stack.js';
import type { Listener } from '../../proxy/broker.types.js';

type Client = ssh2.Client;
type Channel = ssh2.ClientChannel;

const dir = `/tmp/pam-pol-${randomBytes(4).toString('hex')}`;
let stack: SshPolicyStack;
let sshd: TestSshd;
let cp: TestControlPlane;
let broker: Listener;

const rules = (sshdPort: number) => `
command_rules:
  - name: keep-canaries
    protocol: ssh
    match: { command: rm, args_regex: 'canary' }
    action: deny
    message: "Canary files stay."
  - name: no-forbidden-markers
    protocol: ssh
    match: { command: touch, args_regex: 'x-forbidden' }
    action: deny
    message: "Forbidden marker."
  - name: touch-needs-review
    protocol: ssh
    match: { command: touch, args_regex: 'x-review' }
    action: review
    message: "Review markers need a second pair of eyes."
  - name: alert-touch
    protocol: ssh
    match: { command: touch, args_regex: 'x-alert' }
    action: alert
  - name: no-scp-here
    protocol: ssh
    match: { channel: scp, destination: '*no-scp*' }
    action: deny
    message: "No scp into no-scp."
  - name: forward-to-sshd
    protocol: ssh
    match: { channel: port-forward, destination: '127.0.0.1:${sshdPort}' }
    action: allow
`;

beforeAll(async () => {
  mkdirSync(join(dir, 'tab'), { recursive: true });
  mkdirSync(join(dir, 'hist'), { recursive: true });
  stack = await startSshPolicyStack({ targets: { web: 'allow' }, rules: (s) => rules(s.port), broker: { reviewTimeoutMs: 60_000 }, user: 'alice' });
  ({ sshd, cp, broker } = stack);
});

afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(user = 'alice'): Promise<Client> {
  const password = await cp.token(user);
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c)).once('error', reject);
    c.connect({ host: '127.0.0.1', port: broker.port, username: 'root@web', password, readyTimeout: 20_000 });
  });
}


const strip = (s: string) => s.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '');
const SHELL = `exec env PS1='$ ' HISTFILE=/dev/null bash --norc --noprofile -i`;

/** An interactive bash with PS1='$ ' behind a pty; `send` types keys and waits for the prompt. */
class Shell {
  out = '';
  private mark = 0;
  constructor(readonly ch: Channel) {
    ch.on('data', (d: Buffer) => (this.out += d.toString()));
    ch.stderr.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  static async open(client: Client, how: 'shell' | 'exec' = 'shell'): Promise<Shell> {
    const pty = { cols: 200, rows: 50, term: 'xterm' };
    const ch = await new Promise<Channel>((resolve, reject) => {
      if (how === 'shell') client.shell(pty, (err, s) => (err ? reject(err) : resolve(s)));
      else client.exec(SHELL.replace(/^exec /, ''), { pty }, (err, s) => (err ? reject(err) : resolve(s)));
    });
    const sh = new Shell(ch);
    if (how === 'shell') await sh.send(`${SHELL}\r`);
    else await waitFor(() => strip(sh.out).endsWith('$ '), 'first prompt');
    return sh;
  }

  /** Output since the last send, escape sequences removed. */
  get seen(): string {
    return strip(this.out.slice(this.mark));
  }

  /** Writes `keys`; waits until `until` shows up (if given) and `prompts` fresh prompts follow. */
  async send(keys: string, opts: { until?: string | RegExp; prompts?: number; noPrompt?: boolean } = {}): Promise<string> {
    this.mark = this.out.length;
    this.ch.write(keys);
    await waitFor(() => {
      const s = this.seen;
      if (opts.until !== undefined && !(typeof opts.until === 'string' ? s.includes(opts.until) : opts.until.test(s))) return false;
      if (opts.noPrompt) return true;
      return s.endsWith('$ ') && (s.match(/\n\r*\$ /g)?.length ?? 0) >= (opts.prompts ?? 1);
    }, `output after ${JSON.stringify(keys)}`, 1600).catch((err: Error) => {
      throw new Error(`${err.message}; saw ${JSON.stringify(this.seen.slice(-400))}`);
    });
    return this.seen;
  }

  /** Types a line the policy must deny; returns what the user saw. */
  async denied(keys: string, message = 'Canary files stay.'): Promise<string> {
    return this.send(keys, { until: `[pam] denied: ${message}` });
  }
}

function canary(name: string): string {
  const p = join(dir, `canary-${name}`);
  writeFileSync(p, 'still here\n');
  return p;
}

describe('interactive shell: the bypass corpus, checked at the target', () => {
  let client: Client;
  let sh: Shell;
  beforeAll(async () => {
    client = await connect();
    sh = await Shell.open(client);
  });
  afterAll(() => client?.end());

  it.each([
    ['plain', (p: string) => `rm ${p}`],
    ['empty quotes', (p: string) => `r""m ${p}`],
    ['backslash', (p: string) => `\\rm ${p}`],
    ['quoted command', (p: string) => `'rm' ${p}`],
    ['absolute path', (p: string) => `/bin/rm -f ${p}`],
    ['chained', (p: string) => `true; rm ${p}`],
    ['and-chained', (p: string) => `echo x && rm ${p}`],
    ['piped', (p: string) => `echo y | rm ${p}`],
    ['command substitution', (p: string) => `echo $(rm ${p})`],
    ['backticks', (p: string) => `echo \`rm ${p}\``],
    ['bash -c', (p: string) => `bash -c 'rm ${p}'`],
    ['sudo wrapper', (p: string) => `sudo rm ${p}`],
    ['env wrapper', (p: string) => `env rm ${p}`],
    ['variable on the same line', (p: string) => `a=rm; $a ${p}`],
    ['brace expansion', (p: string) => `{rm,${p}}`],
    ['prompt hook', (p: string) => `PROMPT_COMMAND='rm ${p}'`],
    ['prompt string', (p: string) => `PS1='$(rm ${p})$ '`],
    ['exported prompt hook array', (p: string) => `declare -x PROMPT_COMMAND=('rm ${p}')`],
  ])('%s: denied, canary stays, session goes on', async (name, line) => {
    const p = canary(name.replace(/\W/g, '_'));
    const seen = await sh.denied(`${line(p)}\r`);
    expect(seen).toContain('[pam] denied: Canary files stay.');
    expect(existsSync(p)).toBe(true);
  });

  // bash 5.2 drops the first key that arrives while it handles a SIGINT at the prompt, though
  // readline has already echoed it: the screen (and the keys) read `xrm FILE`, bash runs `rm FILE`.
  it.each([
    ['in one write', (p: string) => [`\x03xrm ${p}\r`]],
    ['in two writes', (p: string) => ['\x03', `xrm ${p}\r`]],
    ['after a pending line', (p: string) => [`echo pending\x03xrm ${p}\r`]],
  ])('a key lost behind Ctrl-C (%s) does not turn a judged line into a forbidden one', async (name, writes) => {
    const p = canary(`ctrlc_${name.replace(/\W/g, '_')}`);
    const [first, ...rest] = writes(p);
    if (rest.length) sh.ch.write(first!);
    const seen = await sh.send(rest.length ? rest.join('') : first!, { until: 'xrm: command not found' });
    expect(seen).not.toContain('denied');
    expect(existsSync(p)).toBe(true);
  });

  // readline keys bound by default in bash that run the line without an Enter.
  it('Ctrl-O (operate-and-get-next) runs the line: it is judged like Enter', async () => {
    const p = canary('ctrl_o');
    await sh.denied(`rm ${p}\x0f`);
    expect(existsSync(p)).toBe(true);
  });

  it('Ctrl-X Ctrl-E (edit and run), Esc Ctrl-E (expand, running substitutions), Esc # (uncomment and run) and Ctrl-X ( (a macro that replays an Enter) are refused at the key', async () => {
    await sh.send('export EDITOR=cat VISUAL=cat\r');
    const p1 = canary('ctrl_x_e');
    await sh.send(`rm ${p1}\x18\x05`, { until: '[pam] denied: Ctrl-X Ctrl-E runs the line without Enter', noPrompt: true });
    await sh.send('\x15echo one-$((0+1))\r', { until: 'one-1' });
    const p2 = canary('esc_e');
    await sh.send(`echo $(rm ${p2})\x1b\x05`, { until: '[pam] denied: Esc Ctrl-E runs the line without Enter', noPrompt: true });
    await sh.send('\x15echo two-$((1+1))\r', { until: 'two-2' });
    // Esc 1 Esc #: insert-comment with a count uncomments the line and runs it.
    const p3 = canary('esc_hash');
    await sh.send(`#rm ${p3}\x1b1\x1b#`, { until: '[pam] denied: Esc # runs the line without Enter', noPrompt: true });
    await sh.send('\x15echo three-$((1+2))\r', { until: 'three-3' });
    // Ctrl-X ( … Ctrl-X ) would record an allowed line's Enter, and Ctrl-X e replay it.
    const p4 = canary('kbd_macro');
    await sh.send('\x18(', { until: '[pam] denied: Ctrl-X ( runs the line without Enter', noPrompt: true });
    await sh.send('echo in-macro\r', { until: 'in-macro\r\n' });
    await sh.send(`\x18)rm ${p4};\x18e`, { noPrompt: true });
    await sh.send('\x15echo four-$((2+2))\r', { until: 'four-4' });
    expect(existsSync(p1)).toBe(true);
    expect(existsSync(p2)).toBe(true);
    expect(existsSync(p3)).toBe(true);
    expect(existsSync(p4)).toBe(true);
  });

  it('a denied line left behind a pending Ctrl-X or Esc prefix is cleared, not edited and run', async () => {
    const p1 = canary('prefix_x');
    await sh.denied(`rm ${p1}\x18\r`);
    const p2 = canary('prefix_esc');
    await sh.denied(`echo $(rm ${p2})\x1b\r`);
    await sh.send('echo three-$((1+2))\r', { until: 'three-3' });
    expect(existsSync(p1)).toBe(true);
    expect(existsSync(p2)).toBe(true);
  });

  it('a key binding or completion that would run a command later is denied when it is made; the key does nothing', async () => {
    const p = canary('binding');
    await sh.denied(`bind -x '"\\C-t": rm ${p}'\r`);
    await sh.denied(`bind '"\\C-t": "rm ${p}\\n"'\r`);
    await sh.denied(`complete -C 'rm ${p}' zzcmd\r`);
    await sh.send('\x14', { noPrompt: true });
    await sh.send('zzcmd \t\x15', { noPrompt: true });
    await sh.send('echo keys-$((6*7))\r', { until: 'keys-42' });
    expect(existsSync(p)).toBe(true);
  });

  it('tab completion: the completed line is judged', async () => {
    const p = join(dir, 'tab', 'canary-tab');
    writeFileSync(p, 'x');
    await sh.send(`rm ${join(dir, 'tab')}/c\t`, { until: 'canary-tab', noPrompt: true });
    await sh.denied('\r');
    expect(existsSync(p)).toBe(true);
  });

  it('history recall: Up brings back a forbidden line that was never typed here', async () => {
    const p = join(dir, 'hist', 'canary-hist');
    writeFileSync(p, 'x');
    // `history -s 'rm …'` is itself denied now (it stores a command: shell-hooks.ts); a history
    // file read in is not seen, and the recalled line is judged at Enter.
    const file = join(dir, 'hist', 'lines');
    writeFileSync(file, `rm ${p}\n`);
    await sh.send(`history -r ${file}\r`);
    await sh.send('\x1b[A', { until: 'canary-hist', noPrompt: true });
    await sh.denied('\r');
    expect(existsSync(p)).toBe(true);
  });

  it('history search: Ctrl-R shows `(reverse-i-search)…: LINE`, and LINE is what is judged', async () => {
    const p = join(dir, 'hist', 'canary-search');
    writeFileSync(p, 'x');
    const file = join(dir, 'hist', 'search-lines');
    writeFileSync(file, `rm ${p}\necho unrelated\n`);
    await sh.send(`history -r ${file}\r`);
    await sh.send('\x12canary-se', { until: 'reverse-i-search', noPrompt: true });
    await sh.denied('\r');
    // A search text holding `': ` does not hide the line either.
    await sh.send("\x12': ", { until: 'reverse-i-search', noPrompt: true });
    await sh.send('\x07\x15', { noPrompt: true });
    await sh.send('echo searched-$((5+5))\r', { until: 'searched-10' });
    expect(existsSync(p)).toBe(true);
  });

  it('a search ended with Ctrl-J leaves the found line to edit: the edited line is judged, not the part right of the old cursor', async () => {
    const p = join(dir, 'hist', 'canary-cj');
    writeFileSync(p, 'x');
    const file = join(dir, 'hist', 'cj-lines');
    writeFileSync(file, `ls ${p}\n`);
    await sh.send(`history -r ${file}\r`);
    await sh.send('\x12canary-cj', { until: 'reverse-i-search', noPrompt: true });
    // Ctrl-J ends the search without running the line: the gate judges it (allowed) and passes it on.
    await sh.send('\n', { until: /\$ ls \S+canary-cj/, noPrompt: true });
    // Home, delete `ls`, type `rm`: the prompt end the gate took sits right of the changed text.
    await sh.denied('\x01\x04\x04rm\r');
    await sh.send('echo edited-$((4+4))\r', { until: 'edited-8' });
    expect(existsSync(p)).toBe(true);
  });

  it('a non-incremental search (Esc p, text, Enter) puts the found line in place: its Enter is judged on the row', async () => {
    const p = join(dir, 'hist', 'canary-np');
    writeFileSync(p, 'x');
    const file = join(dir, 'hist', 'np-lines');
    writeFileSync(file, `rm ${p}\n`);
    await sh.send(`history -r ${file}\r`);
    await sh.send('\x1bpcanary-np\r', { until: /rm \S+canary-np/, noPrompt: true });
    await sh.denied('\r');
    await sh.send('echo found-$((3+4))\r', { until: 'found-7' });
    expect(existsSync(p)).toBe(true);
  });

  it('backspace and Ctrl-U edits: the edited line is judged', async () => {
    const p1 = canary('bs');
    await sh.denied(`rmx\x7f ${p1}\r`);
    const p2 = canary('ctrlu');
    await sh.denied(`echo harmless\x15rm ${p2}\r`);
    expect(existsSync(p1)).toBe(true);
    expect(existsSync(p2)).toBe(true);
  });

  it('cursor edits: a word inserted with Left arrows, and a denial with the cursor mid-line clears the whole line', async () => {
    const p = canary('cursor');
    const rest = `m ${p}`;
    await sh.denied(`${rest}${'\x1b[D'.repeat(rest.length)}r\r`);
    expect(existsSync(p)).toBe(true);
    // Ctrl-U alone would keep the text right of the cursor, and the empty Enter would run it.
    const q = canary('midline');
    const ran = join(dir, 'suffix-ran');
    const tail = `touch ${ran}`;
    await sh.denied(`rm ${q}; ${tail}${'\x1b[D'.repeat(tail.length)}\r`);
    await sh.send('echo still-here-$((5*5))\r', { until: 'still-here-25' });
    expect(existsSync(q)).toBe(true);
    expect(existsSync(ran)).toBe(false);
  });

  it('multi-line paste in one write: allowed lines run, the forbidden one does not', async () => {
    const p = canary('paste');
    const ok1 = join(dir, 'paste-1');
    const ok3 = join(dir, 'paste-3');
    const seen = await sh.send(`touch ${ok1}\rrm ${p}\rtouch ${ok3}; echo pasted-$((3*3))\r`, { until: 'pasted-9' });
    expect(seen).toContain('[pam] denied: Canary files stay.');
    expect(existsSync(ok1)).toBe(true);
    expect(existsSync(p)).toBe(true);
    expect(existsSync(ok3)).toBe(true);
  });

  it('input the target does not echo (stty -echo) is judged from the keystrokes', async () => {
    await sh.send('stty -echo\r');
    const p = canary('noecho');
    const seen = await sh.send(`rm ${p}\r`, { until: '[pam] denied' });
    expect(seen).toContain('Canary files stay.');
    await sh.send('stty echo\r');
    expect(existsSync(p)).toBe(true);
  });

  it('a touch marker rule: the file is never created', async () => {
    const m = join(dir, 'x-forbidden-1');
    await sh.denied(`touch ${m}\r`, 'Forbidden marker.');
    expect(existsSync(m)).toBe(false);
  });

  it('KNOWN GAP: interpreters, scripts and variables from an earlier line are not stopped', async () => {
    const py = canary('python');
    await sh.send(`python3 -c 'import os; os.remove("${py}")'\r`);
    expect(existsSync(py)).toBe(false);
    const sc = canary('script');
    const script = join(dir, 'gap.sh');
    await sh.send(`printf '%s %s\\n' r''m ${sc} > ${script}\r`);
    await sh.send(`bash ${script}\r`);
    expect(existsSync(sc)).toBe(false);
    // xargs takes the arguments from stdin at run time: an args_regex rule never sees them.
    const xa = canary('xargs');
    await sh.send(`echo ${xa} | xargs rm\r`);
    expect(existsSync(xa)).toBe(false);
    const v = canary('var');
    await sh.send('a=rm\r');
    await sh.send(`$a ${v}\r`);
    expect(existsSync(v)).toBe(false);
  });

  it('alert: runs, and is audited and marked', async () => {
    const m = join(dir, 'x-alert-1');
    await sh.send(`touch ${m}\r`);
    expect(existsSync(m)).toBe(true);
    const audit = await cp.audit();
    expect(audit.some((e) => e.type === 'policy.alert' && e.rule === 'alert-touch' && e.command === `touch ${m}` && e.via === 'shell')).toBe(true);
  });

  it('review: the held line runs once approved, and is dropped when refused', async () => {
    const approver = await cp.deps.identity.verify(await cp.token('approver-bot', ['approvers']));
    const ok = join(dir, 'x-review-ok');
    let seen = await sh.send(`touch ${ok}\r`, { until: /pam approve-command hold_[0-9a-f]{16}/, noPrompt: true });
    const id1 = /hold_[0-9a-f]{16}/.exec(seen)![0];
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(ok)).toBe(false);
    const after = sh.send('', { until: `approved: ${id1}` });
    await cp.deps.holds.decide(approver, id1, true, 'ok');
    await after;
    await waitFor(() => existsSync(ok), 'approved command ran');

    const no = join(dir, 'x-review-no');
    seen = await sh.send(`touch ${no}\r`, { until: /pam approve-command hold_[0-9a-f]{16}/, noPrompt: true });
    const id2 = /hold_[0-9a-f]{16}/.exec(seen)![0];
    const dropped = sh.send('', { until: `${id2} not approved: an approver refused it` });
    await cp.deps.holds.decide(approver, id2, false, 'no');
    await dropped;
    await sh.send('echo after-review-$((2*21))\r', { until: 'after-review-42' });
    expect(existsSync(no)).toBe(false);

    // Ctrl-C cancels a pending review.
    const cc = join(dir, 'x-review-cancel');
    await sh.send(`touch ${cc}\r`, { until: /pam approve-command hold_/, noPrompt: true });
    await sh.send('\x03', { until: 'not approved: cancelled' });
    // Typed at once: the gate holds it until bash has answered the Ctrl-C (it drops a key read
    // while handling SIGINT; this line once ran as `cho`).
    await sh.send('echo alive-$((1+1))\r', { until: 'alive-2' });
    expect(existsSync(cc)).toBe(false);
  });

  it('every non-allow verdict is in the audit log with its rule and in the recording as a marker', async () => {
    const live = cp.deps.sessions.list().find((s) => s.user === 'alice')!;
    await sh.send('exit\r', { noPrompt: true, until: 'exit' });
    client.end();
    const meta = await waitFor(async () => {
      const m = await cp.deps.recordings.get(live.recordingId);
      return m?.status === 'ended' ? m : undefined;
    }, 'recording sealed');
    const cast = await readFile(cp.deps.recordings.dataPath(meta.id, 'asciicast'), 'utf8');
    const markers = cast.trim().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'm').map((e) => e[2]);
    expect(markers.some((m) => m.startsWith('denied: rm ') && m.includes('Canary files stay.'))).toBe(true);
    expect(markers.some((m) => m.startsWith('alert (alert-touch): touch '))).toBe(true);
    expect(markers.some((m) => m.startsWith('review (touch-needs-review): hold_'))).toBe(true);
    expect(markers.some((m) => m.startsWith('approved: hold_'))).toBe(true);
    const audit = await cp.audit();
    expect(audit.filter((e) => e.type === 'policy.deny' && e.rule === 'keep-canaries' && e.via === 'shell').length).toBeGreaterThanOrEqual(15);
    expect(audit.some((e) => e.type === 'policy.deny' && e.rule === 'no-forbidden-markers')).toBe(true);
    expect(audit.some((e) => e.type === 'policy.review' && e.rule === 'touch-needs-review')).toBe(true);
    expect(audit.some((e) => e.type === 'policy.deny' && e.rule === 'touch-needs-review' && e.status === 'denied')).toBe(true);
  });
});

describe('zsh at the target: keys that run the line there', () => {
  let client: Client;
  let sh: Shell;
  beforeAll(async () => {
    client = await connect();
    sh = await Shell.open(client);
    // No PROMPT_CR/PROMPT_SP: the prompt follows output the way bash's does, which Shell waits for.
    await sh.send(`exec env PS1='$ ' HISTFILE=/dev/null EDITOR=cat zsh -f -i +o PROMPT_CR +o PROMPT_SP\r`, { until: /\$ $/, noPrompt: true });
  });
  afterAll(() => client?.end());

  it('Tab on a line with a substitution is judged before zsh expands it (and runs it)', async () => {
    const p = canary('zsh_tab');
    await sh.send(`echo $(rm ${p})\t`, { until: '[pam] denied: Canary files stay. (Tab can run the substitutions on this line)', noPrompt: true });
    await sh.send('\x15echo zsh-$((2*3))\r', { until: 'zsh-6' });
    expect(existsSync(p)).toBe(true);
    // Ctrl-X * and Ctrl-X g expand (and run) it too.
    await sh.send(`echo $(rm ${p})\x18*`, { until: 'denied: Canary files stay. (that key can run', noPrompt: true });
    await sh.send(`echo $(rm ${p})\x18g`, { until: 'denied: Canary files stay. (that key can run', noPrompt: true });
    await sh.send('\x15echo zsh-$((3*3))\r', { until: 'zsh-9' });
    expect(existsSync(p)).toBe(true);
    // Completion without a substitution works as ever.
    await sh.send(`ls ${dir}/canary-zsh_t\t`, { until: 'canary-zsh_tab', noPrompt: true });
    await sh.send('\x15', { noPrompt: true });
  });

  it('Esc a (accept-and-hold) and Ctrl-O run the line in zsh: both are judged as an Enter', async () => {
    const p = canary('zsh_esc_a');
    await sh.denied(`rm ${p}\x1ba`);
    await sh.denied(`rm ${p}\x0f`);
    // Esc x opens zsh's command minibuffer below the line; its Enter runs `accept-line` on the line.
    await sh.send(`rm ${p}\x1bxaccept-line\r`, { until: '[pam] denied: Canary files stay.', noPrompt: true });
    await sh.send('echo held-$((3*5))\r', { until: 'held-15' });
    expect(existsSync(p)).toBe(true);
  });
});

describe('tmux at the target: its command prompt runs shell commands', () => {
  let client: Client;
  let sh: Shell;
  const socket = `pam-pol-${randomBytes(3).toString('hex')}`;
  beforeAll(async () => {
    client = await connect();
    sh = await Shell.open(client);
    await sh.send(`tmux -L ${socket} -f /dev/null new-session env PS1='$ ' bash --norc --noprofile -i\r`, { until: /\$ /, noPrompt: true });
  });
  afterAll(() => {
    client?.end();
    try { execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' }); } catch { /* already gone */ }
  });

  it.each([
    ['run-shell', (p: string) => `run-shell "rm ${p}"`],
    ['new-window', (p: string) => `new-window "rm ${p}"`],
    ['split-window', (p: string) => `split-window -d 'rm ${p}'`],
    ['bind-key', (p: string) => `bind-key y run-shell "rm ${p}"`],
    ['send-keys', (p: string) => `send-keys "rm ${p}" Enter`],
  ])('Ctrl-B : %s … is judged as the shell command it runs', async (name, cmd) => {
    const p = canary(`tmux_${name.replace(/\W/g, '_')}`);
    await sh.send('\x02:', { until: ':', noPrompt: true });
    await sh.send(`${cmd(p)}\r`, { until: '[pam] denied: Canary files stay.', noPrompt: true });
    await sh.send('\x1b', { noPrompt: true });
    await sh.send('\x15echo tmux-$((1+6))\r', { until: 'tmux-7', noPrompt: true });
    expect(existsSync(p)).toBe(true);
  });
});

describe('exec and side channels', () => {
  it('exec: denied with exit status 126 before it reaches the target; review waits for approval', async () => {
    const client = await connect();
    try {
      const p = canary('exec');
      const denied = await exec(client, `rm ${p}`);
      expect(denied.code).toBe(126);
      expect(denied.stderr).toContain('[pam] denied: Canary files stay.');
      expect(existsSync(p)).toBe(true);

      const m = join(dir, 'x-review-exec');
      const approver = await cp.deps.identity.verify(await cp.token('approver-bot', ['approvers']));
      const running = exec(client, `touch ${m} && echo made-it`);
      const hold = await waitFor(async () => (await cp.deps.holds.list(approver)).find((h) => h.text === `touch ${m} && echo made-it` && h.status === 'pending'), 'exec hold');
      expect(existsSync(m)).toBe(false);
      await cp.deps.holds.decide(approver, hold.id, true);
      const r = await running;
      expect(r).toMatchObject({ code: 0, stdout: 'made-it\n' });
      expect(r.stderr).toContain(`waiting for approval: pam approve-command ${hold.id}`);
      expect(existsSync(m)).toBe(true);
    } finally {
      client.end();
    }
  });

  it('a preprocessor from the environment (LESSOPEN) and less +! are judged as the commands they run (exec)', async () => {
    const client = await connect();
    try {
      for (const [i, line] of [
        (m: string) => `LESSOPEN='|touch ${m}; echo %s' less /etc/hostname`,
        (m: string) => `less +'!touch ${m}' /etc/hostname < /dev/null`,
      ].entries()) {
        const m = join(dir, `x-forbidden-pager-${i}`);
        const r = await exec(client, line(m));
        expect(r.code).toBe(126);
        expect(r.stderr).toContain('[pam] denied');
        expect(existsSync(m)).toBe(false);
      }
      // The same program without the hidden command runs.
      const ok = await exec(client, `LESSOPEN='|cat %s' less /etc/hostname`);
      expect(ok.code).toBe(0);
      expect(ok.stdout.length).toBeGreaterThan(0);
    } finally {
      client.end();
    }
  });

  it('a pty exec of a shell (`ssh -t host bash`) is gated like a shell channel', async () => {
    const client = await connect();
    try {
      const sh = await Shell.open(client, 'exec');
      const p = canary('ptyexec');
      await sh.denied(`rm ${p}\r`);
      expect(existsSync(p)).toBe(true);
    } finally {
      client.end();
    }
  });

  it('scp runs as the scp channel; anything chained to it is judged as a command', async () => {
    const client = await connect();
    try {
      mkdirSync(join(dir, 'no-scp'), { recursive: true });
      const r = await exec(client, `scp -t ${join(dir, 'no-scp')}/f`);
      expect(r.code).toBe(126);
      expect(r.stderr).toContain('No scp into no-scp.');
      const m = join(dir, 'x-forbidden-scp');
      const chained = await exec(client, `scp -t /tmp/ok; touch ${m}`);
      expect(chained.code).toBe(126);
      expect(existsSync(m)).toBe(false);
      const audit = await cp.audit();
      expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'scp' && e.rule === 'no-scp-here')).toBe(true);
    } finally {
      client.end();
    }
  });

  it('port forwarding per host:port: the allowed destination is relayed, others are refused and audited', async () => {
    const client = await connect();
    try {
      const banner = await new Promise<string>((resolve, reject) => client.forwardOut('127.0.0.1', 5555, '127.0.0.1', sshd.port, (err, ch) => {
        if (err) return reject(err);
        ch.once('data', (d: Buffer) => { resolve(d.toString()); ch.close(); });
      }));
      expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
      const refused = await new Promise<Error | undefined>((resolve) => client.forwardOut('127.0.0.1', 5555, '127.0.0.1', 1, (err, ch) => { ch?.close(); resolve(err); }));
      expect(refused).toBeDefined();
      const audit = await cp.audit();
      expect(audit.some((e) => e.type === 'ssh.forward' && e.destination === `127.0.0.1:${sshd.port}` && e.rule === 'forward-to-sshd')).toBe(true);
      expect(audit.some((e) => e.type === 'policy.deny' && e.channel === 'port-forward' && e.destination === '127.0.0.1:1')).toBe(true);
    } finally {
      client.end();
    }
  });
});

describe('hot reload', () => {
  it('a rule file edited during a live session applies to the next command in it', async () => {
    const client = await connect();
    const file = join(cp.config.policiesDir, 'hot.yaml');
    try {
      const sh = await Shell.open(client);
      const a = join(dir, 'hot-a');
      await sh.send(`touch ${a}\r`);
      expect(existsSync(a)).toBe(true);
      writeFileSync(`${file}.tmp`, 'command_rules:\n  - name: hot-rule\n    protocol: ssh\n    match: { command: touch, args_regex: "hot-" }\n    action: deny\n    message: "Hot rule."\n');
      renameSync(`${file}.tmp`, file);
      await waitFor(() => cp.deps.policy.rules().rules.some((r) => r.name === 'hot-rule'), 'rules reloaded');
      const b = join(dir, 'hot-b');
      await sh.denied(`touch ${b}\r`, 'Hot rule.');
      expect(existsSync(b)).toBe(false);
    } finally {
      client.end();
      rmSync(file, { force: true });
    }
  });
});
