import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** What the calling thread got: SCHED_IDLE, only a nice value, or nothing (not allowed). */
export type ThreadPriority = 'idle' | 'nice' | 'normal';

/**
 * Lowers the calling thread's CPU priority (on Linux, nice values and scheduling policies are
 * per thread). `nice` 19, the default, asks for the lowest there is: nice 19 and then the
 * SCHED_IDLE policy (sched(7)), under which the thread runs only on a core nothing else wants.
 * Under nice 19 alone the index worker still took about 1.5% of a contended core and, more,
 * the idle moments between the brokers' wake-ups (a proxied ping-pong leaves many), delaying the
 * next wake-up of a broker, pgbench or PostgreSQL: index-live measured 9-12% less throughput
 * with the index on; under SCHED_IDLE the same bench is within noise (BENCHMARKS.md). Set with
 * util-linux `chrt` on this thread's id (no Node API sets a policy; a thread may lower its own
 * without privileges); without chrt the thread keeps nice 19.
 */
export function lowerThreadPriority(nice = 19): ThreadPriority {
  try {
    setPriority(0, nice);
  } catch {
    return 'normal';
  }
  if (nice < 19 || process.platform !== 'linux') return 'nice';
  try {
    const tid = readlinkSync('/proc/thread-self').split('/').pop()!;
    execFileSync('chrt', ['--idle', '-p', '0', tid], { stdio: 'ignore', timeout: 5000 });
    return 'idle';
  } catch {
    return 'nice';
  }
}
