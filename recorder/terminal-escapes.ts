/* eslint-disable no-control-regex */
/**
 * Terminal escape sequences (ECMA-48), in one place for the recorder's readers and the SSH
 * broker. Two grammars, because the two directions of a terminal carry different things:
 *
 * - Output (target → screen): CSI (`ESC [ … final`), OSC (`ESC ] … BEL|ST`), the string
 *   controls DCS, SOS, PM and APC (`ESC P|X|^|_ … ST`), and the short forms (`ESC ( B`,
 *   `ESC 7`, `ESC =`, …). A string whose terminator has not come yet runs to the end of the
 *   text, as a terminal would swallow it.
 * - Keys (user → target): CSI and SS3 (`ESC O A`: arrows, function keys) and ESC plus one
 *   character (Alt+key). Never the string forms: Alt+] must not swallow what is typed after it.
 */
const OUTPUT_ESCAPE = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -/]*[0-~]/g;
/** C0 controls but tab and newline, DEL, and the C1 controls. */
const OUTPUT_CONTROL = /[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g;
const PLAIN = new RegExp(`${OUTPUT_ESCAPE.source}|${OUTPUT_CONTROL.source}`, 'g');
const KEY_ESCAPE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)/g;
const KEY_CONTROL = new RegExp(`${KEY_ESCAPE.source}|[\\x00-\\x1f\\x7f]`, 'g');

/** Output as searchable, displayable text: line breaks as `\n`, escape sequences and controls removed. */
export function plainText(s: string): string {
  return s.replace(/\r\n?/g, '\n').replace(PLAIN, '');
}

/** Output with its escape sequences removed; control characters (`\r`, `\b`) kept for a renderer. */
export function stripOutputEscapes(s: string): string {
  return s.replace(OUTPUT_ESCAPE, '');
}

/** Keystrokes with key escape sequences (arrows, function keys, Alt+key) removed. */
export function stripKeyEscapes(s: string): string {
  return s.replace(KEY_ESCAPE, '');
}

/** Keystrokes without control keys: key escape sequences and C0 controls removed, printable text left. */
export function printableKeys(s: string): string {
  return s.replace(KEY_CONTROL, '');
}

/** Keystrokes cut into printable runs and control keys (escape sequences, C0 controls), in order. */
export function* keyParts(s: string): Generator<{ text: string; control: boolean }> {
  let last = 0;
  for (const m of s.matchAll(KEY_CONTROL)) {
    if (m.index > last) yield { text: s.slice(last, m.index), control: false };
    yield { text: m[0], control: true };
    last = m.index + m[0].length;
  }
  if (last < s.length) yield { text: s.slice(last), control: false };
}
