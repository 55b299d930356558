import { readFileSync } from 'node:fs';

/**
 * The index's text path for a payload of plain ASCII, read from its bytes: no TextDecoder, no
 * plainText regexes, and a base64 line dropped without ever becoming a string. Bulk text through
 * a raw channel (`cat`, `base64`, logs) is almost always such a payload, and decoding it, cleaning
 * it and scanning it for base64 as strings was most of the index worker's CPU per MiB of it.
 *
 * Plain ASCII: every byte is a printable ASCII character, a tab or a newline. On such bytes UTF-8
 * is Latin-1 (one character per byte) and plainText changes nothing (no `\r`, no escape, no
 * control), so the plain text is the bytes themselves, its length their count.
 */

/** Per byte: 1 upper-case letter, 2 lower-case letter, 4 digit, 8 `+` or `/` (the base64 alphabet), 16 `=`, 32 newline, 64 other printable or tab; 0 anything else (controls, DEL, bytes above 0x7f). */
const CLASS = new Uint8Array(256);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  CLASS[c] = /[A-Z]/.test(ch) ? 1 : /[a-z]/.test(ch) ? 2 : /[0-9]/.test(ch) ? 4 : ch === '+' || ch === '/' ? 8
    : ch === '=' ? 16 : c === 10 ? 32 : c === 9 || (c >= 32 && c < 127) ? 64 : 0;
}
const latin1 = (b: Uint8Array, from: number, to: number) => Buffer.prototype.latin1Slice.call(b, from, to) as string;

interface ScanExports {
  memory: WebAssembly.Memory;
  scan(len: number, out: number): number;
  plain(len: number): number;
}

function load(): ScanExports | undefined {
  try {
    const bytes = readFileSync(new URL('./ascii-scan.wasm', import.meta.url));
    return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as ScanExports;
  } catch {
    // No WebAssembly SIMD on this CPU or runtime: the JavaScript scan.
    return undefined;
  }
}

const wasm = load();
let heap = wasm ? Buffer.from(wasm.memory.buffer) : Buffer.alloc(0);

/** True when the WebAssembly scan loaded (else plainAsciiKept is plainAsciiKeptJs). */
export const wasmScanAvailable = wasm !== undefined;

/**
 * Makes room for `bytes` of input at address 0, the 16 newlines ascii-scan.wat stops at, and the
 * answers after them (a dropped line is at least 60 bytes long); returns where the answers go.
 */
function room(bytes: number, n: number): number {
  const out = (bytes + 16 + 7) & ~7;
  const need = out + (Math.floor(n / 60) + 1) * 8;
  if (need > heap.length) {
    wasm!.memory.grow(Math.ceil((need - heap.length) / 65536));
    heap = Buffer.from(wasm!.memory.buffer);
  }
  return out;
}

/** Scans the `n` plain bytes at 0; the kept text from the gaps between the dropped lines, or undefined when a byte is not plain. */
function scanned(n: number, out: number, slice: (from: number, to: number) => string): string | undefined {
  heap.fill(10, n, n + 16);
  const dropped = wasm!.scan(n, out);
  if (dropped < 0) return undefined;
  if (dropped === 0) return slice(0, n);
  const at = new Int32Array(heap.buffer, heap.byteOffset + out, dropped * 2);
  const parts: string[] = [];
  let kept = 0;
  for (let i = 0; i < at.length; i += 2) {
    if (at[i]! > kept) parts.push(slice(kept, at[i]!));
    kept = at[i + 1]!;
  }
  if (kept < n) parts.push(slice(kept, n));
  return parts.join('');
}

/**
 * What `withoutEncodedLines(plainText(decoded))` gives for `b` (extract-asciicast.ts), or
 * undefined when `b` is not plain ASCII: see plainAsciiKeptJs, the definition. The scan runs in
 * WebAssembly (ascii-scan.wat, 16 bytes a step), about four times the JavaScript loop's speed
 * with the copy in; only the kept text becomes a string.
 */
export function plainAsciiKept(b: Uint8Array): string | undefined {
  if (!wasm) return plainAsciiKeptJs(b);
  const out = room(b.length, b.length);
  heap.set(b, 0);
  return scanned(b.length, out, (from, to) => latin1(b, from, to));
}

/**
 * withoutEncodedLines(s) for text already made plain (plainText: no `\r`, no controls but tab and
 * newline) when it is all ASCII, by the same scan: `s` itself when nothing is dropped. Undefined
 * when it is not ASCII or there is no WebAssembly (the caller runs withoutEncodedLines). On such
 * text the only line end is `\n`, so the two agree (the unit tests hold them to it).
 */
export function plainAsciiStringKept(s: string): string | undefined {
  if (!wasm) return undefined;
  const n = s.length;
  // UTF-8 takes at most 3 bytes a UTF-16 unit, and exactly n bytes only when every one is ASCII.
  const out = room(3 * n, n);
  if (heap.write(s, 0, 'utf8') !== n) return undefined;
  const kept = scanned(n, out, (from, to) => s.slice(from, to));
  return kept?.length === n ? s : kept;
}

/**
 * Terminal output (`o` data) made plain and without its base64 lines, in one pass of each scan
 * when it is ASCII whose only controls are tab, LF and CR (the bulk of a pty session: text with
 * CR LF line ends): `length` is plainText(data).length and `kept` is withoutEncodedLines of that
 * text. Undefined for any other text (an escape, another control, a character above 0x7f) or
 * without WebAssembly: the caller runs plainText and the rest.
 */
export function terminalAsciiText(data: string): { length: number; kept: string } | undefined {
  if (!wasm) return undefined;
  const n = data.length;
  const out = room(3 * n, n);
  if (heap.write(data, 0, 'utf8') !== n) return undefined;
  const length = wasm.plain(n);
  if (length < 0) return undefined;
  // Slices of `data` itself when it had no CR (a lone CR became LF in place, keeping the length).
  const kept = length === n && !data.includes('\r') ? scanned(n, out, (from, to) => data.slice(from, to)) : scanned(length, out, (from, to) => latin1(heap, from, to));
  return kept === undefined ? undefined : { length, kept };
}

/**
 * What `withoutEncodedLines(plainText(decoded))` gives for `b` (extract-asciicast.ts), or
 * undefined when `b` is not plain ASCII (the caller takes the string path). With only `\n` for a
 * line end, a dropped line is what that function drops: at a line start, 60 or more characters of
 * the alphabet holding an upper-case letter, a lower-case letter and a digit, up to two `=`, then
 * a newline (dropped with it) or the end of the payload.
 */
export function plainAsciiKeptJs(b: Uint8Array): string | undefined {
  const n = b.length;
  let parts: string[] | undefined;
  let kept = 0;
  let p = 0; // always a line start
  while (p < n) {
    let q = p;
    let seen = 0;
    for (; q < n; q++) {
      const f = CLASS[b[q]!]!;
      if (f === 0 || f > 8) break;
      seen |= f;
    }
    let e = q;
    if (q - p >= 60 && (seen & 7) === 7) {
      if (e < n && b[e] === 61) {
        e++;
        if (e < n && b[e] === 61) e++;
      }
      if (e === n || b[e] === 10) {
        parts ??= [];
        if (kept < p) parts.push(latin1(b, kept, p));
        kept = p = e === n ? n : e + 1;
        continue;
      }
    }
    // The rest of a line that stays: every byte must be plain, up to the newline.
    for (; e < n; e++) {
      const f = CLASS[b[e]!]!;
      if (f === 32) break;
      if (f === 0) return undefined;
    }
    p = e + 1;
  }
  if (!parts) return latin1(b, 0, n);
  if (kept < n) parts.push(latin1(b, kept, n));
  return parts.join('');
}
