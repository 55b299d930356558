/**
 * One parse, the server's parse: the proxy judges SQL text with libpg-query, which reads it the
 * way a server with `standard_conforming_strings = on` and UTF-8 text does. Two settings would
 * make the server read the same bytes differently (`'x\' , $$ ' ; DROP TABLE t; -- $$` is one
 * SELECT with the setting on, a DROP with it off; a trailing byte 0x5c of a multi-byte SJIS/BIG5/
 * GBK character is a backslash to a UTF-8 reader), so the proxy pins both:
 *
 * - at startup (`pinStartup`): `client_encoding` must be UTF8 (SQL_ASCII and libpq's `auto` are
 *   taken as UTF8: both are ASCII-safe); any other encoding is refused, not transcoded. A
 *   `standard_conforming_strings` parameter other than `on` is refused, and so are startup
 *   `options` that name either setting. Upstream always gets `client_encoding=UTF8` and
 *   `standard_conforming_strings=on`, which outrank ALTER ROLE / ALTER DATABASE settings.
 * - mid-session (`brokenPin`): every ParameterStatus from the server is checked; a change of
 *   either (SET, set_config(), a function, RESET to a role default) ends the session.
 *
 * Pure functions: no sockets, no audit.
 */

export interface PinRefusal { sqlstate: string; message: string }

const UTF8_NAMES = new Set(['UTF8', 'UNICODE', 'SQLASCII', 'AUTO']);

/** Encoding names the way the server compares them: case, `-` and `_` ignored. */
function encodingKey(name: string): string {
  return name.toUpperCase().replace(/[-_\s]/g, '');
}

/** GUC names in `options` (`-c name=v`, `--name=v`): case-insensitive, `-` same as `_`, backslash escapes dropped. */
function optionsName(text: string): string {
  return text.toLowerCase().replace(/\\/g, '').replace(/-/g, '_');
}

/**
 * The startup parameters to send upstream, or the refusal. `options` is kept as the client
 * sent it when it names neither setting (it is recorded in the session's start entry).
 */
export function pinStartup(params: Record<string, string>): { params: Record<string, string> } | { refusal: PinRefusal } {
  const enc = params.client_encoding;
  if (enc !== undefined && !UTF8_NAMES.has(encodingKey(enc))) {
    return { refusal: { sqlstate: '22023', message: `client_encoding "${enc.slice(0, 40)}" is refused: this proxy reads SQL as UTF8 and does not transcode; connect with client_encoding=UTF8` } };
  }
  const scs = params.standard_conforming_strings;
  if (scs !== undefined && scs.trim().toLowerCase() !== 'on') {
    return { refusal: { sqlstate: '22023', message: 'standard_conforming_strings must stay on through this proxy' } };
  }
  const opts = params.options;
  if (opts !== undefined) {
    const n = optionsName(opts);
    if (n.includes('standard_conforming_strings') || n.includes('client_encoding')) {
      return { refusal: { sqlstate: '22023', message: 'startup options may not set standard_conforming_strings or client_encoding through this proxy (they are pinned to on and UTF8)' } };
    }
  }
  return { params: { ...params, client_encoding: 'UTF8', standard_conforming_strings: 'on' } };
}

/** The reason a server-reported parameter breaks the pins, or undefined when it keeps them. */
export function brokenPin(name: string, value: string): string | undefined {
  const n = name.toLowerCase();
  if (n === 'standard_conforming_strings' && value.trim().toLowerCase() !== 'on') return `standard_conforming_strings changed to ${value.slice(0, 40)}`;
  if (n === 'client_encoding' && encodingKey(value) !== 'UTF8') return `client_encoding changed to ${value.slice(0, 40)}`;
  return undefined;
}

/** ParameterStatus body: name NUL value NUL. Undefined when malformed. */
export function parseParameterStatus(body: Buffer): { name: string; value: string } | undefined {
  const a = body.indexOf(0);
  if (a < 0) return undefined;
  const b = body.indexOf(0, a + 1);
  if (b < 0) return undefined;
  return { name: body.toString('utf8', 0, a), value: body.toString('utf8', a + 1, b) };
}

/** The reason a whole ParameterStatus message (header included) breaks the pins, or undefined. */
export function statusBreaksPin(message: Buffer | undefined): string | undefined {
  const ps = message && parseParameterStatus(message.subarray(5));
  return ps ? brokenPin(ps.name, ps.value) : undefined;
}
