import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './pam-process.js';
import { waitFor } from './sshd.js';

/**
 * A Redis of the test's own on a free port (no persistence), so stopping it touches nothing
 * else. `stop()` and `start()` again on the same port model an outage and a recovery; data is
 * gone after a restart (--save "").
 */
export interface PrivateRedis {
  port: number;
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function privateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const r: PrivateRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      let out = '';
      proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout!.on('data', (d) => (out += d));
      await waitFor(() => out.includes('Ready to accept connections') || proc!.exitCode !== null, 'redis-server to start');
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${out}`);
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null) return;
      p.kill('SIGKILL');
      await new Promise((res) => p.once('exit', res));
    },
  };
  await r.start();
  return r;
}
