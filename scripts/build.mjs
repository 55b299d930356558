#!/usr/bin/env node
// `npm run build`: compiles the TypeScript sources to dist/ (tsc -p tsconfig.build.json), copies
// the files the code reads beside itself (WebAssembly, the browser app), writes the entry of the
// index worker for compiled code, and stamps the build. bin/pam.js runs dist/ when the stamp is
// newer than every source file, else the sources through tsx.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
// Taken before compiling: a source saved during the build makes the build stale, not current.
const startedAt = Date.now();
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
cpSync(join(root, 'recorder/json-escape/escape.wasm'), join(dist, 'recorder/json-escape/escape.wasm'));
cpSync(join(root, 'recorder/index/ascii-scan.wasm'), join(dist, 'recorder/index/ascii-scan.wasm'));
cpSync(join(root, 'replay-ui/app'), join(dist, 'replay-ui/app'), { recursive: true });
mkdirSync(join(dist, 'recorder/index'), { recursive: true });
writeFileSync(join(dist, 'recorder/index/index-worker.mjs'), "// The index worker's entry for compiled code (the sources' one loads tsx first).\nawait import('./index-worker.js');\n");
writeFileSync(join(dist, 'package.json'), JSON.stringify({ type: 'module' }) + '\n');
writeFileSync(join(dist, 'build-info.json'), JSON.stringify({ builtAt: startedAt }) + '\n');
console.log(`built dist/ in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
