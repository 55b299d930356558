/**
 * `npm run bench [NAME] [-- args…]`: runs one benchmark of bench/ by name, or lists them.
 * Each benchmark's own header says what it measures and how to read its figures.
 *
 *   npm run bench                     # list
 *   npm run bench ssh-throughput -- --mb 200 --runs 3
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const names = readdirSync(here).filter((f) => f.endsWith('.ts') && !['run.ts'].includes(f) && !f.includes('setup')).map((f) => f.replace(/\.ts$/, '')).sort();
const name = process.argv[2];
if (!name || !names.includes(name)) {
  if (name) process.stderr.write(`bench: no benchmark named ${JSON.stringify(name)}\n`);
  process.stdout.write(`benchmarks (npm run bench NAME -- ARGS):\n${names.map((n) => `  ${n}`).join('\n')}\n`);
  process.exit(name ? 2 : 0);
}
process.argv.splice(2, 1);
await import(pathToFileURL(join(here, `${name}.ts`)).href);
