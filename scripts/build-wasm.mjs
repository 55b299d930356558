// Assembles the WebAssembly text sources into the binaries committed beside them.
//   npm run build:wasm          writes recorder/json-escape/escape.wasm and recorder/index/ascii-scan.wasm
//   npm run build:wasm -- --check   exits 1 if a committed binary differs from its source
import { readFileSync, writeFileSync } from 'node:fs';
import wabtInit from 'wabt';

const SOURCES = ['recorder/json-escape/escape.wat', 'recorder/index/ascii-scan.wat'];
const check = process.argv.includes('--check');
const wabt = await wabtInit();
let stale = 0;
for (const src of SOURCES) {
  const mod = wabt.parseWat(src, readFileSync(src, 'utf8'), { simd: true });
  mod.validate();
  const { buffer } = mod.toBinary({ write_debug_names: false });
  mod.destroy();
  const out = src.replace(/\.wat$/, '.wasm');
  if (check) {
    let old = Buffer.alloc(0);
    try { old = readFileSync(out); } catch { /* missing counts as stale */ }
    if (!old.equals(Buffer.from(buffer))) { console.error(`${out} does not match ${src}: run npm run build:wasm`); stale++; }
  } else {
    writeFileSync(out, buffer);
    console.log(`${out}: ${buffer.length} bytes`);
  }
}
process.exit(stale ? 1 : 0);
