#!/usr/bin/env node
// Entry point of the `pam` command. Runs the compiled code in dist/ when `npm run build` made it
// and no source file changed since; otherwise the TypeScript sources through tsx, so a checkout
// works right after `npm ci` without a build, and an edit is never shadowed by an old build.
// PAM_FROM_SOURCE=1 forces the sources.
import { readFileSync, readdirSync, statSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const SOURCE_DIRS = ['app', 'config', 'proxy', 'access', 'policies', 'recorder', 'replay-ui/server', 'replay-ui/app', 'cli'];

function builtAt() {
  try {
    return JSON.parse(readFileSync(new URL('dist/build-info.json', root), 'utf8')).builtAt;
  } catch {
    return undefined;
  }
}

/** True if any source file is newer than the build (about 1 ms for the whole tree). */
function changedSince(t) {
  for (const d of SOURCE_DIRS) {
    for (const e of readdirSync(new URL(d, root), { recursive: true, withFileTypes: true })) {
      if (e.isFile() && statSync(`${e.parentPath ?? e.path}/${e.name}`).mtimeMs > t) return true;
    }
  }
  return false;
}

const t = process.env.PAM_FROM_SOURCE === '1' ? undefined : builtAt();
if (t !== undefined && !changedSince(t)) {
  process.env.PAM_ENTRY = 'dist';
  await import('../dist/app/main.js');
} else {
  if (t !== undefined) process.stderr.write('pam: sources changed since `npm run build`; running the sources (build again to use dist/)\n');
  process.env.PAM_ENTRY = 'sources';
  const { register } = await import('tsx/esm/api');
  register();
  await import('../app/main.ts');
}
