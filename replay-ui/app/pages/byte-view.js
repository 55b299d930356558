import { h, fmtBytes } from '../dom.js';

/** Hex head as rows of 16 bytes: offset, hex, printable ASCII. */
function hexRows(hex) {
  const rows = [];
  for (let at = 0; at < hex.length; at += 32) {
    const part = hex.slice(at, at + 32);
    const bytes = part.match(/../g) ?? [];
    const ascii = bytes.map((b) => { const c = parseInt(b, 16); return c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.'; }).join('');
    rows.push(`${(at / 2).toString(16).padStart(8, '0')}  ${bytes.join(' ').padEnd(47)}  ${ascii}`);
  }
  return rows.join('\n');
}

/**
 * The byte-level view of a raw recording (channels without a pty): per channel and stream its
 * size, SHA-256 and first bytes in hex, a download of the exact bytes, and the files moved.
 */
export function byteView(meta, raw) {
  const dl = (stream, channel) => `/api/v1/recordings/${encodeURIComponent(meta.id)}/export?format=raw&stream=${stream}&channel=${channel}`;
  const rows = [];
  for (const c of raw.channels) {
    for (const stream of ['stdout', 'stderr', 'stdin']) {
      const s = c.streams[stream];
      if (!s) continue;
      rows.push(h('tr', { class: s.binary ? 'binary' : undefined },
        h('td', {}, `${c.channel} · ${c.kind}${c.label ? ` (${c.label})` : ''}`),
        h('td', {}, stream),
        h('td', { class: 'num', title: `${s.bytes} bytes` }, fmtBytes(s.bytes)),
        h('td', {}, s.binary ? 'binary' : 'text'),
        h('td', {}, h('code', { class: 'sha' }, s.sha256)),
        h('td', {}, h('a', { class: 'dl', href: dl(stream, c.channel), download: '' }, 'bytes')),
      ));
      if (s.binary) rows.push(h('tr', { class: 'hex' }, h('td', { colspan: '6' }, h('pre', { class: 'hexdump' }, hexRows(s.head)))));
    }
  }
  const files = raw.transfers.map((t) => h('li', {}, `${t.direction} ${t.path} · ${fmtBytes(t.size ?? 0)} · `, h('code', { class: 'sha' }, t.sha256 ?? '?'), t.via ? ` · ${t.via}` : '', t.stored ? ' · content kept' : ''));
  return h('section', { class: 'panel', id: 'byte-view' },
    h('h2', {}, 'Bytes carried'),
    raw.truncated ? h('p', { class: 'notice error' }, 'The last frame was cut short (the proxy stopped mid-write); everything before it is intact.') : null,
    h('table', { class: 'grid', id: 'streams' },
      h('thead', {}, h('tr', {}, ...['Channel', 'Stream', 'Size', 'Kind', 'SHA-256', 'Download'].map((t) => h('th', {}, t)))),
      h('tbody', {}, ...rows)),
    files.length ? h('div', {}, h('h2', {}, 'Files transferred'), h('ul', { id: 'transfers' }, ...files)) : null);
}
