/** A failed CLI action: printed as "pam: message" and exit code `exitCode`. */
export class CliError extends Error {
  constructor(message: string, public readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

export interface ApiOptions { server?: string; token?: string }

export const serverOf = (flag: string | undefined, env = process.env) => (flag ?? env.PAM_SERVER ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');

/** Talks to the proxy's HTTP API with the caller's IAM token (PAM_SERVER, PAM_TOKEN or flags). */
export class ApiClient {
  readonly server: string;
  private readonly token: string | undefined;

  constructor(opts: ApiOptions, env = process.env) {
    this.server = serverOf(opts.server, env);
    this.token = opts.token ?? env.PAM_TOKEN;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, path, body);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async raw(method: string, path: string, body?: unknown): Promise<Response> {
    if (!this.token) throw new CliError('no token: run `pam login` (token on stdin), set PAM_TOKEN or use --token-file FILE (with the dev issuer: npx pam dev token USER --groups …)', 2);
    let res: Response;
    try {
      res = await fetch(this.server + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      throw new CliError(`cannot reach the proxy at ${this.server} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}); is \`pam serve\` running? Set PAM_SERVER or --server.`);
    }
    if (!res.ok) {
      let message = `HTTP ${res.status}`;
      try {
        const j = (await res.json()) as { error?: { message?: string } };
        if (j.error?.message) message = j.error.message;
      } catch {
        /* not JSON */
      }
      throw new CliError(`${message} (HTTP ${res.status})`, res.status === 401 || res.status === 403 ? 3 : 1);
    }
    return res;
  }
}
