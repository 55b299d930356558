import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { HttpDeps } from './http.types.js';
import type { LiveSession } from '../../access/live-sessions.js';
import { tailRecording } from '../../recorder/tail.js';
import { capabilities, checkOrigin, type UiSessions } from './ui-session.js';
import { auditBy } from '../../recorder/audit-events.js';

/** Bytes queued on a viewer's socket above which the tail waits (a slow browser). */
const SEND_BUFFER = 1024 * 1024;

/**
 * Live view: `GET /api/v1/live/:sessionId` upgraded to a WebSocket (cookie auth, can_audit).
 * It tails the session's growing recording file (recorder/tail.ts) and sends
 * whole lines as text messages: the asciicast header and events for SSH, statement lines for
 * Postgres. `{"type":"end"}` follows the last line when the session ends. No broker hooks.
 */
export function liveUpgrade(cp: HttpDeps, sessions: UiSessions) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  const refuse = (socket: Duplex, status: number, why: string) => {
    socket.end(`HTTP/1.1 ${status} ${why}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  };
  const handler = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const m = /^\/api\/v1\/live\/([A-Za-z0-9_-]{1,80})$/.exec(url.pathname);
    if (!m) return refuse(socket, 404, 'Not Found');
    try {
      checkOrigin(req);
    } catch {
      return refuse(socket, 403, 'Forbidden');
    }
    const s = sessions.lookup(req);
    if (!s) return refuse(socket, 401, 'Unauthorized');
    if (!capabilities(cp, s.identity).audit) return refuse(socket, 403, 'Forbidden');
    const live = cp.sessions.get(m[1]!);
    if (!live) return refuse(socket, 404, 'Not Found');
    wss.handleUpgrade(req, socket, head, (ws) => {
      void cp.audit.append(auditBy(s.identity, 'recording.open', { recording: live.recordingId, user: live.user, target: live.target, how: 'live' })).catch(() => undefined);
      tail(cp, live, ws).catch(() => ws.close(1011, 'tail failed'));
    });
  };
  return Object.assign(handler, { closeAll: () => { for (const c of wss.clients) c.terminate(); wss.close(); } });
}

async function tail(cp: HttpDeps, live: LiveSession, ws: WebSocket): Promise<void> {
  // An SSH recording turns raw when its first channel has no pty (recorder/ssh-recorder.ts): ask the catalog.
  const format = live.protocol === 'ssh' ? ((await cp.recordings.get(live.recordingId))?.format ?? 'asciicast') : 'jsonl';
  let ended = false;
  const onEnd = (info: LiveSession) => { if (info.id === live.id) ended = true; };
  cp.sessions.events.on('end', onEnd);
  const gone = new AbortController();
  ws.once('close', () => gone.abort());
  try {
    const blocks = tailRecording(cp.recordings.dataPath(live.recordingId, format), {
      format, signal: gone.signal, ended: () => ended || !cp.sessions.get(live.id),
    });
    for await (const lines of blocks) {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(lines);
      // Backpressure: a slow browser pauses the tail instead of growing memory.
      while (ws.bufferedAmount > SEND_BUFFER && ws.readyState === ws.OPEN) await new Promise((r) => setTimeout(r, 50));
    }
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ type: 'end' }));
    ws.close(1000, 'session ended');
  } finally {
    cp.sessions.events.off('end', onEnd);
  }
}
