/** pgbouncer 1.18 in session mode in front of 127.0.0.1:5432 for one database (runs as user postgres). */
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await exec('pg_isready', ['-h', '127.0.0.1', '-p', String(port), '-t', '1']);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`nothing listening on ${port}`);
}

export async function startPgbouncer(dir: string, db: string): Promise<{ port: number; pid: number; stop(): void }> {
  const port = await freePort();
  await writeFile(join(dir, 'userlist.txt'), '"postgres" ""\n');
  await writeFile(join(dir, 'pgbouncer.ini'), `[databases]
${db} = host=127.0.0.1 port=5432 dbname=${db}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, 'userlist.txt')}
pool_mode = session
max_client_conn = 200
default_pool_size = 40
logfile = ${join(dir, 'pgbouncer.log')}
pidfile = ${join(dir, 'pgbouncer.pid')}
`);
  await exec('chown', ['-R', 'postgres:postgres', dir]);
  // runuser execs pgbouncer in its own process: the pid file names the one whose CPU counts.
  const child = spawn('runuser', ['-u', 'postgres', '--', 'pgbouncer', join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  await waitPort(port);
  const { readFile } = await import('node:fs/promises');
  const pid = Number((await readFile(join(dir, 'pgbouncer.pid'), 'utf8')).trim());
  return { port, pid, stop: () => { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } child.kill('SIGTERM'); } };
}
