import { execFile } from 'node:child_process';
import { appendFile, chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

/** A private PostgreSQL cluster whose TCP logins need a SCRAM password (the machine's trusts 127.0.0.1). */
export interface ScramCluster {
  port: number;
  /** Runs SQL as the superuser over the cluster's Unix socket (trust). */
  sql(q: string): Promise<string>;
  close(): Promise<void>;
}

const asPostgres = (cmd: string, args: string[]) => exec('runuser', ['-u', 'postgres', '--', join(BIN, cmd), ...args], { timeout: 30_000 });

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** initdb + pg_ctl start as user postgres, fsync off; `host all all 127.0.0.1/32 scram-sha-256`. */
export async function startScramCluster(): Promise<ScramCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'pam-pgc-'));
  await chmod(dir, 0o700);
  await exec('chown', ['postgres:postgres', dir]);
  const port = await freePort();
  await asPostgres('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '--auth-local=trust', '--auth-host=reject', '--no-sync', '-E', 'UTF8']);
  await appendFile(join(dir, 'data', 'postgresql.conf'), `
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${dir}'
fsync = off
shared_buffers = 16MB
max_connections = 30
password_encryption = 'scram-sha-256'
`);
  await writeFile(join(dir, 'data', 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n');
  await exec('chown', ['-R', 'postgres:postgres', dir]);
  await asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
  return {
    port,
    async sql(q) {
      return (await asPostgres('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAtc', q])).stdout;
    },
    async close() {
      await asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
