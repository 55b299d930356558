import type { ControlPlane } from './control-plane.js';
import type { Listener } from '../proxy/broker.types.js';
import type { HttpListener } from '../replay-ui/server/http.types.js';
import type { Metrics } from './metrics.js';
import type { Readiness } from './health.js';
import type { LiveIndex } from '../recorder/index/live-index.js';

/** A started `pam serve`: what the signal handlers and the tests hold. */
export interface RunningProxy {
  cp: ControlPlane;
  http: HttpListener;
  ssh?: Listener;
  postgres?: Listener;
  /** listen.metrics: /metrics, /healthz, /readyz. */
  ops?: Listener;
  metrics: Metrics;
  readiness: Readiness;
  /** Listeners that take sessions (http, ssh, postgres), for a graceful stop. */
  listeners: Listener[];
  /** The catalog and search index, written by its worker thread while sessions run; absent with `index: { enabled: false }`. */
  index?: LiveIndex;
  close(): Promise<void>;
}
