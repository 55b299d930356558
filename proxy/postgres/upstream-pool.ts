import { createHash } from 'node:crypto';
import * as msg from './backend-messages.js';
import { closeUpstream } from './session-end.js';
import { connectUpstream, forwardedParams, type UpstreamConnection, type UpstreamOptions } from './upstream.js';

/**
 * Pre-authenticated target connections, kept idle between sessions (`postgres.upstream_pool`).
 *
 * A connection is only ever handed to a session with the same key: target (name, address, TLS
 * mode), database, login, the credential it logged in with (a digest: a rotated secret never
 * reuses a connection opened with the old one) and the startup parameters forwarded upstream.
 * Each session still runs the whole lifecycle (token, grant, vault, its own recording and
 * audit entries under its own identity); only the target login is saved.
 *
 * A session gives its connection back only when it ended cleanly: at a message boundary, no
 * request outstanding, and the last ReadyForQuery said idle ('I', never in or after a failed
 * transaction). Then `DISCARD ALL` runs (temporary tables, prepared statements, portals,
 * SET/SET ROLE/SESSION AUTHORIZATION, LISTEN, advisory locks, sequences, plans) and the
 * connection goes back idle only if the server answered exactly CommandComplete DISCARD ALL
 * and ReadyForQuery 'I'. Anything a connection says while idle (a FATAL from
 * pg_terminate_backend, a shutdown) closes it, as does its end or the idle timeout; the next
 * session then logs in afresh. At most `size` connections per key are idle or resetting; the
 * rest are closed.
 */

export interface PoolOptions {
  /** Idle connections kept per key; 0 keeps none. */
  size: number;
  idleTimeoutMs: number;
  /** How long DISCARD ALL may take before the connection is closed instead. */
  resetTimeoutMs?: number;
  /** The real login (tests count logins through it). */
  connect?: (opts: UpstreamOptions) => Promise<UpstreamConnection>;
}

export interface PooledConnection extends UpstreamConnection {
  /** Set on connections the pool may take back. */
  poolKey?: string;
  /** The connection served an earlier session (reset since). */
  reused?: boolean;
  /** Listeners the socket had before any session added its own. */
  own?: Record<(typeof LIFECYCLE_EVENTS)[number], Function[]>;
}

const LIFECYCLE_EVENTS = ['error', 'close', 'end'] as const;

interface Idle {
  conn: PooledConnection;
  timer: NodeJS.Timeout;
  drop: () => void;
}

const RESET_SQL = 'DISCARD ALL';

/** Every pool of this process (one per Postgres listener), for the metrics. */
const pools = new Set<UpstreamPool>();

/** Idle connections and counts summed over the process's pools (`/metrics`). */
export function upstreamPoolTotals(): { idle: number; logins: number; reused: number; discarded: number } {
  const t = { idle: 0, logins: 0, reused: 0, discarded: 0 };
  for (const p of pools) {
    t.idle += p.idleCount;
    t.logins += p.counts.logins;
    t.reused += p.counts.reused;
    t.discarded += p.counts.discarded;
  }
  return t;
}

export class UpstreamPool {
  private readonly idle = new Map<string, Idle[]>();
  /** Connections per key now running their reset. */
  private readonly resetting = new Map<string, number>();
  private closed = false;
  /** Logins made and reuses served, for tests and metrics. */
  readonly counts = { logins: 0, reused: 0, returned: 0, discarded: 0 };

  constructor(private readonly opts: PoolOptions) {
    pools.add(this);
  }

  static keyOf(o: UpstreamOptions): string {
    const t = o.target;
    const params = Object.entries(forwardedParams(o.params)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const credential = createHash('sha256').update(o.password).digest('base64');
    return JSON.stringify([t.name, t.host, t.port, t.database, t.tls, t.caFile ?? '', o.login, credential, params]);
  }

  /** An idle connection of the same key, or a new login. */
  async acquire(o: UpstreamOptions): Promise<PooledConnection> {
    const key = UpstreamPool.keyOf(o);
    const list = this.idle.get(key);
    while (list && list.length) {
      const entry = list.pop()!;
      if (list.length === 0) this.idle.delete(key);
      entry.drop();
      const s = entry.conn.socket;
      if (s.destroyed || !s.writable) continue;
      // Nothing is read until the session listens (it resumes the socket once it relays).
      s.pause();
      this.counts.reused++;
      return { ...entry.conn, leftover: Buffer.alloc(0), reused: true };
    }
    const conn = await (this.opts.connect ?? connectUpstream)(o);
    this.counts.logins++;
    // Errors once a session let go (a reset on a dead socket) must not go unhandled.
    conn.socket.on('error', () => {});
    const own = Object.fromEntries(LIFECYCLE_EVENTS.map((ev) => [ev, conn.socket.listeners(ev)])) as PooledConnection['own'];
    return { ...conn, poolKey: key, own };
  }

  /** Idle connections now (all keys). */
  get idleCount(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  /**
   * Takes back the connection of a session that ended; the session's listeners go. If the
   * session ended `clean` (at a message boundary, nothing outstanding, the last ReadyForQuery
   * idle, no broken pin or held statement) it is reset and kept, else closed; closed too when
   * the key is full, the reset fails, or the pool closed.
   */
  release(conn: PooledConnection, clean: boolean): void {
    const s = conn.socket;
    s.removeAllListeners('data');
    // The session's listeners go; Node's own and the pool's (taken at login) stay.
    for (const ev of LIFECYCLE_EVENTS) for (const l of s.listeners(ev)) if (!conn.own?.[ev].includes(l)) s.off(ev, l as () => void);
    const key = conn.poolKey;
    const busy = key ? (this.idle.get(key)?.length ?? 0) + (this.resetting.get(key) ?? 0) : Infinity;
    if (!clean || !key || this.closed || busy >= this.opts.size || s.destroyed) {
      this.counts.discarded++;
      closeUpstream(conn.socket);
      return;
    }
    this.resetting.set(key, (this.resetting.get(key) ?? 0) + 1);
    void this.reset(conn).then((params) => {
      this.resetting.set(key, this.resetting.get(key)! - 1);
      if (this.resetting.get(key) === 0) this.resetting.delete(key);
      if (!params || this.closed) {
        this.counts.discarded++;
        closeUpstream(conn.socket);
        return;
      }
      this.counts.returned++;
      this.keep(key, { ...conn, parameters: params });
    });
  }

  /** Runs DISCARD ALL; resolves to the server's parameters after it, or undefined if it did not end idle. */
  private reset(conn: PooledConnection): Promise<[string, string][] | undefined> {
    const s = conn.socket;
    const params = new Map(conn.parameters);
    return new Promise((resolve) => {
      let buf: Buffer = Buffer.alloc(0);
      let completed = false;
      const done = (ok: boolean) => {
        clearTimeout(timer);
        s.off('data', onData);
        s.off('close', onGone);
        s.off('error', onGone);
        resolve(ok ? [...params] : undefined);
      };
      const onGone = () => done(false);
      const onData = (d: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        while (buf.length >= 5) {
          const len = buf.readInt32BE(1);
          if (len < 4 || len > 1 << 20) return done(false);
          if (buf.length < 1 + len) return;
          const code = buf[0]!;
          const body = buf.subarray(5, 1 + len);
          buf = buf.subarray(1 + len);
          switch (code) {
            case 0x43: // C CommandComplete
              completed = body.toString('utf8', 0, body.length - 1) === RESET_SQL;
              if (!completed) return done(false);
              break;
            case 0x53: { // S ParameterStatus: RESET ALL reports what it set back
              const nul = body.indexOf(0);
              params.set(body.toString('utf8', 0, nul), body.toString('utf8', nul + 1, body.length - 1));
              break;
            }
            case 0x4e: // N NoticeResponse
            case 0x41: // A NotificationResponse, left over from the session's LISTEN: dropped
              break;
            case 0x5a: // Z ReadyForQuery
              return done(completed && body[0] === 0x49 && buf.length === 0);
            default: // an ErrorResponse or anything else: not reused
              return done(false);
          }
        }
      };
      const timer = setTimeout(() => done(false), this.opts.resetTimeoutMs ?? 5_000);
      s.on('data', onData);
      s.on('close', onGone);
      s.on('error', onGone);
      s.resume();
      s.write(msg.query(RESET_SQL));
    });
  }

  private keep(key: string, conn: PooledConnection): void {
    const s = conn.socket;
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    const entry: Idle = {
      conn,
      timer: setTimeout(() => gone(), this.opts.idleTimeoutMs),
      drop: () => {
        clearTimeout(entry.timer);
        s.off('data', gone);
        s.off('close', gone);
        s.off('error', gone);
        s.off('end', gone);
      },
    };
    // Whatever an idle server says (a FATAL before it closes) or its end takes it out of the pool.
    const gone = () => {
      entry.drop();
      const l = this.idle.get(key);
      const i = l?.indexOf(entry) ?? -1;
      if (i >= 0) l!.splice(i, 1);
      if (l && l.length === 0) this.idle.delete(key);
      this.counts.discarded++;
      closeUpstream(s);
    };
    entry.timer.unref();
    s.on('data', gone);
    s.on('close', gone);
    s.on('error', gone);
    s.on('end', gone);
    list.push(entry);
  }

  /** Closes every idle connection; later releases close theirs. */
  close(): void {
    this.closed = true;
    pools.delete(this);
    for (const list of this.idle.values()) {
      for (const e of list) {
        e.drop();
        closeUpstream(e.conn.socket);
      }
    }
    this.idle.clear();
  }
}
