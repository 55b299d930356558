import { readFileSync } from 'node:fs';

/**
 * JSON string escaping of byte chunks in WebAssembly (escape.wat): the recorder's cost per MiB
 * of bulk output. One instance is shared by every writer in the process; calls are synchronous,
 * so they never interleave.
 *
 * Escaping the same text with V8 (a RegExp check plus replaceAll, or JSON.stringify) walks it
 * one UTF-16 unit at a time, about 1.5 ms per MiB here; the SIMD loop copies 16 bytes a step
 * and stops only at bytes that need an escape (BENCHMARKS.md, SSH "Current figures").
 */

/** Bytes 0..1023 of the memory hold the escape table; input starts above it. */
const TABLE_END = 1024;
const PAGE = 64 * 1024;

interface EscapeExports {
  memory: WebAssembly.Memory;
  escape(src: number, len: number, dst: number): number;
}

function load(): EscapeExports | undefined {
  try {
    const bytes = readFileSync(new URL('./escape.wasm', import.meta.url));
    return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as EscapeExports;
  } catch {
    // No WebAssembly SIMD on this CPU or runtime: callers use their JavaScript path.
    return undefined;
  }
}

const wasm = load();
let heap = wasm ? new Uint8Array(wasm.memory.buffer) : new Uint8Array(0);

/** True when the WebAssembly escaper loaded; otherwise escapeJsonBytes must not be called. */
export const wasmEscapeAvailable = wasm !== undefined;

/**
 * The body of a JSON string (without quotes) for the concatenation of `chunks`, which must be
 * valid UTF-8 as a whole (7-bit ASCII always is). The same bytes as the UTF-8 encoding of
 * `JSON.stringify(text).slice(1, -1)`.
 *
 * The result is a view into WebAssembly memory: it is valid only until the next call, so the
 * caller copies it out at once.
 */
export function escapeJsonBytes(chunks: readonly Uint8Array[]): Buffer {
  if (!wasm) throw new Error('WebAssembly JSON escaper not available');
  let total = 0;
  for (const c of chunks) total += c.length;
  const src = TABLE_END;
  const dst = src + total + 16;
  const need = dst + total * 6 + 16;
  if (need > heap.length) {
    wasm.memory.grow(Math.ceil((need - heap.length) / PAGE));
    heap = new Uint8Array(wasm.memory.buffer);
  }
  let at = src;
  for (const c of chunks) {
    heap.set(c, at);
    at += c.length;
  }
  const end = wasm.escape(src, at - src, dst);
  return Buffer.from(heap.buffer, heap.byteOffset + dst, end - dst);
}
