import type ssh2 from 'ssh2';

/** Runs `command` on an ssh2 client connection; resolves at channel close with what came back. */
export function exec(client: ssh2.Client, command: string): Promise<{ stdout: string; stderr: string; code: number | null; signal?: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      let signal: string | undefined;
      ch.on('data', (d: Buffer) => (stdout += d.toString()));
      ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      ch.on('exit', (c: number | null, s?: string) => { code = c; signal = s; });
      ch.on('close', () => resolve({ stdout, stderr, code, signal }));
    });
  });
}
