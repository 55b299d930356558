import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SECURITY_HEADERS } from './security-headers.js';
import { HttpError } from './http-errors.js';
import type { Route } from './router.js';

const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'app');
const require = createRequire(import.meta.url);
/** The package folder (its package.json may not be exported, so walk up from its entry point). */
function pkgDir(name: string): string {
  const entry = require.resolve(name);
  const at = entry.lastIndexOf(`/node_modules/${name}/`);
  if (at < 0) throw new Error(`cannot locate ${name}`);
  return entry.slice(0, at + `/node_modules/${name}`.length);
}

/** Third-party files the app loads, by the only names it may ask for. */
const VENDOR: Record<string, () => string> = {
  'asciinema-player.min.js': () => join(pkgDir('asciinema-player'), 'dist/bundle/asciinema-player.min.js'),
  'asciinema-player.css': () => join(pkgDir('asciinema-player'), 'dist/bundle/asciinema-player.css'),
  'xterm.mjs': () => join(pkgDir('@xterm/xterm'), 'lib/xterm.mjs'),
  'xterm.css': () => join(pkgDir('@xterm/xterm'), 'css/xterm.css'),
};

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8', mjs: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', html: 'text/html; charset=utf-8', svg: 'image/svg+xml',
};

/**
 * The document's policy: the API's strict CSP plus 'wasm-unsafe-eval', which asciinema-player
 * needs to compile its terminal emulator (WebAssembly only: JS eval stays forbidden).
 */
export const APP_CSP = SECURITY_HEADERS['content-security-policy']!.replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'");

async function send(res: import('node:http').ServerResponse, path: string, type: string, extra: Record<string, string> = {}): Promise<undefined> {
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch {
    throw new HttpError(404, 'no such file');
  }
  res.writeHead(200, { ...SECURITY_HEADERS, 'cache-control': 'no-cache', 'content-type': type, 'content-length': body.length, ...extra });
  res.end(body);
  return undefined;
}

/** The single-page app at / and its files; public (the data they fetch is not). */
export function staticRoutes(): Route[] {
  const index = ({ res }: { res: import('node:http').ServerResponse }) => send(res, join(APP_DIR, 'index.html'), TYPES.html!, { 'content-security-policy': APP_CSP });
  return [
    { method: 'GET', path: '/', public: true, handler: index },
    {
      method: 'GET', path: '/app/:file', public: true,
      handler: ({ res, params }) => {
        const m = /^[a-z0-9-]+\.(js|css|svg)$/.exec(params.file!);
        if (!m) throw new HttpError(404, 'no such file');
        return send(res, join(APP_DIR, params.file!), TYPES[m[1]!]!);
      },
    },
    {
      method: 'GET', path: '/app/pages/:file', public: true,
      handler: ({ res, params }) => {
        if (!/^[a-z0-9-]+\.js$/.test(params.file!)) throw new HttpError(404, 'no such file');
        return send(res, join(APP_DIR, 'pages', params.file!), TYPES.js!);
      },
    },
    {
      method: 'GET', path: '/vendor/:file', public: true,
      handler: ({ res, params }) => {
        const where = Object.hasOwn(VENDOR, params.file!) ? VENDOR[params.file!] : undefined;
        if (!where) throw new HttpError(404, 'no such file');
        return send(res, where(), TYPES[params.file!.split('.').pop()!]!);
      },
    },
  ];
}
