import { execFile } from 'node:child_process';
import { mkdir, readFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Config } from '../../config/config.types.js';

const run = promisify(execFile);

/**
 * The certificate the Postgres listener answers SSLRequest with: `postgres.tls_cert` and
 * `tls_key` from the config, else a self-signed P-256 certificate generated on first start into
 * `data_dir/postgres-tls/` (Node has no certificate generator, so this shells out to
 * `openssl req` once; later starts reuse the files). Clients that pin it use
 * `sslmode=verify-ca sslrootcert=data_dir/postgres-tls/cert.pem`.
 */
export async function loadTlsContext(config: Config): Promise<{ context: SecureContext; certFile: string }> {
  let certFile = config.postgres.tlsCert;
  let keyFile = config.postgres.tlsKey;
  if (!certFile || !keyFile) {
    const dir = join(config.dataDir, 'postgres-tls');
    certFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    const exists = await access(certFile).then(() => access(keyFile!)).then(() => true, () => false);
    if (!exists) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await run('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyFile, '-out', certFile, '-days', '3650', '-subj', '/CN=pam-proxy',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ], { timeout: 20_000 });
    }
  }
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  return { context: createSecureContext({ cert, key, minVersion: 'TLSv1.2' }), certFile };
}
