import type { RecordingMeta } from '../recording.types.js';

export interface WorkerOptions {
  dataDir: string;
  /** How often live recordings are read (ms). */
  tickMs: number;
  /** CPU nice value of the worker thread (default 19: the lowest priority, with SCHED_IDLE on Linux). */
  nice?: number;
}

/** Main thread → index worker. */
export type WorkerIn =
  | { type: 'meta'; meta: RecordingMeta }
  | { type: 'sync' }
  /** A reader found the file damaged: start afresh from the recordings. */
  | { type: 'damaged'; why: string }
  | { type: 'close' };

/** Index worker → main thread. */
export type WorkerOut =
  | { type: 'ready' }
  | { type: 'status'; building: boolean; done: number; total: number }
  | { type: 'reset'; why: string }
  | { type: 'error'; message: string }
  | { type: 'closed' };
