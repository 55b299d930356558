import { startSshd } from '../test/helpers/sshd.js';
import { PROCESS_ROLES, startPamProcess } from '../test/helpers/pam-process.js';

/**
 * The product as users run it: `pam serve` as its own process from a YAML config, one SSH
 * target `bench` (login root, key set with `pam secret set`) on a real sshd, and a granted
 * token (`pam request` + `pam approve`). What the shipped-process SSH benches start from.
 */
export async function startServeBench(opts: { nodeArgs?: string[]; entry?: string; sshd?: Awaited<ReturnType<typeof startSshd>>; extra?: string } = {}) {
  const sshd = opts.sshd ?? await startSshd();
  const pam = await startPamProcess({
    roles: PROCESS_ROLES,
    ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}),
    ...(opts.entry ? { entry: opts.entry } : {}),
    extra: `${opts.extra ?? ''}
targets:
  - name: bench
    protocol: ssh
    address: "127.0.0.1:${sshd.port}"
    host_key: "${sshd.hostKey}"
    logins: { root: { secret: bench-root } }
`,
  });
  if ((await pam.pam(['secret', 'set', 'bench-root'], {}, sshd.userKey)).code !== 0) throw new Error('pam secret set failed');
  await pam.grant('bencher', 'bench', 'root');
  const token = await pam.token('bencher', 'dba');
  return { sshd, pam, token, port: pam.ports.ssh, close: async () => { await pam.stop(); await sshd.close(); } };
}
