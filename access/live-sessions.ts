import { EventEmitter } from 'node:events';

export interface LiveSession {
  id: string;
  protocol: 'ssh' | 'postgres';
  user: string;
  subject: string;
  target: string;
  login: string;
  grantId: string;
  recordingId: string;
  clientAddress?: string;
  startedAt: string;
}

/**
 * Live sessions of this process, so an auditor's kill (UI, API) and grant revocation reach the
 * broker that owns the session. Brokers register with a kill function and unregister at end.
 */
export class SessionRegistry {
  private readonly live = new Map<string, { info: LiveSession; kill: (reason: string) => void; notify?: (message: string) => void }>();
  readonly events = new EventEmitter();

  /** `notify` shows the user a line without ending anything (a shutdown warning); optional. */
  register(info: LiveSession, kill: (reason: string) => void, notify?: (message: string) => void): () => void {
    this.live.set(info.id, { info, kill, notify });
    this.events.emit('start', info);
    return () => {
      if (this.live.delete(info.id)) this.events.emit('end', info);
    };
  }

  list(): LiveSession[] {
    return [...this.live.values()].map((s) => s.info);
  }

  get(id: string): LiveSession | undefined {
    return this.live.get(id)?.info;
  }

  /** Ends the session with a one-line reason shown to the user. Returns false if not live here. */
  kill(id: string, reason: string): boolean {
    const s = this.live.get(id);
    if (!s) return false;
    s.kill(reason);
    return true;
  }

  /** Tells every live session's user `message` (SSH: a line on the terminal; Postgres: a NOTICE). */
  notifyAll(message: string): number {
    let n = 0;
    for (const s of [...this.live.values()]) {
      if (!s.notify) continue;
      try {
        s.notify(message);
        n++;
      } catch { /* the session is going away by itself */ }
    }
    return n;
  }

  /** Ends every live session `match` accepts (offboarding); returns their ids. */
  killWhere(match: (s: LiveSession) => boolean, reason: string): string[] {
    const ids: string[] = [];
    for (const s of [...this.live.values()]) {
      if (match(s.info)) {
        s.kill(reason);
        ids.push(s.info.id);
      }
    }
    return ids;
  }
}
