/** An API error with the status and message the client sees. Anything else becomes a bare 500. */
export class HttpError extends Error {
  constructor(public readonly status: number, message: string, public readonly code = codeFor(status)) {
    super(message);
    this.name = 'HttpError';
  }
}

function codeFor(status: number): string {
  return ({ 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed', 409: 'conflict', 413: 'too_large', 415: 'unsupported_media_type', 421: 'bad_host', 429: 'too_many_requests', 503: 'unavailable' } as Record<number, string>)[status] ?? 'error';
}
