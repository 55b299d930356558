/**
 * An interactive bash behind a pty through the proxy (ssh2 client), for tests that type at it
 * as a user does: `send` writes keys (one at a time when asked) and waits for what should show.
 */
import ssh2 from 'ssh2';
import { waitFor } from './sshd.js';

/** Output with escape sequences removed. */
export const stripEscapes = (s: string) => s.replace(/\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\x1b[=>78]/g, '');
/** A bash with PS1='$ ', no rc files and no history file. */
export const PLAIN_BASH = `exec env PS1='$ ' HISTFILE=/dev/null TERM=xterm bash --norc --noprofile -i`;

export class PtyShell {
  out = '';
  private mark = 0;
  private constructor(readonly client: ssh2.Client, readonly ch: ssh2.ClientChannel) {
    ch.on('data', (d: Buffer) => (this.out += d.toString()));
    ch.stderr.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  /** Logs in as `username` (`login@target`) with the token, opens a pty shell and starts PLAIN_BASH in it. */
  static async open(port: number, username: string, token: string): Promise<PtyShell> {
    const client = await new Promise<ssh2.Client>((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c)).once('error', reject);
      c.connect({ host: '127.0.0.1', port, username, password: token, readyTimeout: 20_000 });
    });
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell({ cols: 120, rows: 40, term: 'xterm' }, (err, s) => (err ? reject(err) : resolve(s))));
    const p = new PtyShell(client, ch);
    await p.send(`${PLAIN_BASH}\r`);
    return p;
  }

  /** Output since the last send, escape sequences removed. */
  get seen(): string {
    return stripEscapes(this.out.slice(this.mark));
  }

  /** Writes `keys` (one key at a time, `gapMs` apart, when given), then waits for `until` (default: a `$ ` prompt at the end). */
  async send(keys: string, until: string | RegExp = /\$ $/, gapMs = 0): Promise<string> {
    this.mark = this.out.length;
    if (gapMs) for (const k of keys) { this.ch.write(k); await new Promise((r) => setTimeout(r, gapMs)); }
    else this.ch.write(keys);
    await waitFor(() => (typeof until === 'string' ? this.seen.includes(until) : until.test(this.seen)), `output after ${JSON.stringify(keys)}`, 1600)
      .catch((err: Error) => { throw new Error(`${err.message}; saw ${JSON.stringify(this.seen.slice(-300))}`); });
    return this.seen;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.client.once('close', () => r()));
    this.client.end();
    await closed;
  }
}
