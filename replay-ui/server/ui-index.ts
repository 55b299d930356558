import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpDeps } from './http.types.js';
import type { Authenticator } from './http.js';
import type { Route } from './router.js';
import { UiSessions } from './ui-session.js';
import { staticRoutes } from './ui-static.js';
import { uiRecordingRoutes } from './ui-recordings.js';
import { uiPolicyRoutes } from './ui-policies.js';
import { uiInboxRoutes } from './ui-inbox.js';
import { liveUpgrade } from './ui-live.js';

export interface ReplayUi {
  routes: Route[];
  authenticators: Authenticator[];
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  close(): void;
}

/** The browser app: static files, cookie sign-in, replay/search/live/policy routes, the live ws. */
export function replayUi(cp: HttpDeps): ReplayUi {
  const sessions = new UiSessions(cp);
  const live = liveUpgrade(cp, sessions);
  return {
    routes: [...staticRoutes(), ...sessions.routes(), ...uiRecordingRoutes(cp), ...uiPolicyRoutes(cp), ...uiInboxRoutes(cp)],
    authenticators: [sessions.authenticate],
    onUpgrade: (req, socket, head) => {
      try {
        live(req, socket, head);
      } catch {
        socket.destroy();
      }
    },
    close: () => {
      live.closeAll();
      sessions.close();
    },
  };
}
