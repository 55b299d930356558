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

/**
 * What `withoutEncodedLines(plainText(decoded))` gives for `b` (extract-asciicast.ts), or
 * undefined when `b` is not plain ASCII (the caller takes the string path). With only `\n` for a
 * line end, a dropped line is what that function drops: at a line start, 60 or more characters of
 * the alphabet holding an upper-case letter, a lower-case letter and a digit, up to two `=`, then
 * a newline (dropped with it) or the end of the payload.
 */
export function plainAsciiKept(b: Uint8Array): string | undefined {
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
