import { open } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { HttpDeps } from './http.types.js';
import type { LiveSession } from '../../access/live-sessions.js';
import { HttpError } from './http-errors.js';
import { capabilities, checkOrigin, type UiSessions } from './ui-session.js';

const POLL_MS = 200;
const CHUNK = 256 * 1024;
const BACKLOG = 256 * 1024;

/**
 * Live view: `GET /api/v1/live/:sessionId` upgraded to a WebSocket (cookie auth, can_audit).
 * It tails the session's growing recording file (flushed every 250 ms by the recorder) and sends
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
      void cp.audit.append({ type: 'recording.open', actor: s.identity.user, recording: live.recordingId, user: live.user, target: live.target, how: 'live' }).catch(() => undefined);
      tail(cp, live, ws).catch(() => ws.close(1011, 'tail failed'));
    });
  };
  return Object.assign(handler, { closeAll: () => { for (const c of wss.clients) c.terminate(); wss.close(); } });
}

async function tail(cp: HttpDeps, live: LiveSession, ws: WebSocket): Promise<void> {
  const format = live.protocol === 'ssh' ? 'asciicast' : 'jsonl';
  const path = cp.recordings.dataPath(live.recordingId, format);
  let ended = false;
  const onEnd = (info: LiveSession) => { if (info.id === live.id) ended = true; };
  cp.sessions.events.on('end', onEnd);
  let fh;
  for (let i = 0; i < 25 && !fh; i++) {
    try {
      fh = await open(path, 'r');
    } catch {
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
  if (!fh) throw new HttpError(404, 'recording file not found');
  // Join near the end: the header (SSH), then the last BACKLOG bytes from a line boundary, so
  // watching a long session does not resend hours of output.
  let offset = 0;
  let carry = '';
  const size = (await fh.stat()).size;
  if (size > BACKLOG) {
    const head = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const nl = head.subarray(0, bytesRead).indexOf(10);
    if (format === 'asciicast' && nl > 0) ws.send(head.toString('utf8', 0, nl));
    const probe = Buffer.alloc(64 * 1024);
    const from = size - BACKLOG;
    const { bytesRead: n } = await fh.read(probe, 0, probe.length, from);
    const cut = probe.subarray(0, n).indexOf(10);
    offset = cut < 0 ? size : from + cut + 1;
  }
  const decoder = new TextDecoder('utf-8');
  const buf = Buffer.alloc(CHUNK);
  try {
    while (ws.readyState === ws.OPEN) {
      const wasEnded = ended;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const text = carry + decoder.decode(buf.subarray(0, bytesRead), { stream: true });
        const cut = text.lastIndexOf('\n');
        if (cut < 0) { carry = text; continue; }
        carry = text.slice(cut + 1);
        const lines = text.slice(0, cut);
        if (lines) ws.send(lines);
        // Backpressure: a slow browser pauses the tail instead of growing memory.
        while (ws.bufferedAmount > 4 * CHUNK && ws.readyState === ws.OPEN) await new Promise((r) => setTimeout(r, 50));
      }
      if (wasEnded) {
        ws.send(JSON.stringify({ type: 'end' }));
        ws.close(1000, 'session ended');
        break;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (!cp.sessions.get(live.id)) ended = true;
    }
  } finally {
    cp.sessions.events.off('end', onEnd);
    await fh.close();
  }
}
