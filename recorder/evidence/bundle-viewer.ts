import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { RecordingMeta } from '../recording.types.js';
import { RawFrameParser, STREAMS, type RawFrame } from '../raw-frame.js';

/**
 * The offline viewer of an evidence bundle: `index.html` plus `recording.js` (the recording as
 * one JS string, because a page opened from file:// may not fetch files beside it) and, for
 * terminal sessions, the asciinema-player bundle. Deterministic from the recording and its
 * catalog entry, so `pam evidence verify` regenerates it and compares byte for byte.
 */

const require = createRequire(import.meta.url);

function pkgDir(name: string): string {
  const entry = require.resolve(name);
  const at = entry.lastIndexOf(`/node_modules/${name}/`);
  if (at < 0) throw new Error(`cannot locate ${name}`);
  return entry.slice(0, at + `/node_modules/${name}`.length);
}

/** Bundle file name → installed file it must equal. */
export function playerFiles(): Record<string, string> {
  const dir = join(pkgDir('asciinema-player'), 'dist/bundle');
  return {
    'player/asciinema-player.min.js': join(dir, 'asciinema-player.min.js'),
    'player/asciinema-player.css': join(dir, 'asciinema-player.css'),
  };
}

const esc = (s: unknown) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export interface ViewerFacts {
  meta: RecordingMeta;
  sha256: string;
  checkpoint: { size: number; time: string; key_id: string };
  sealEntry: number;
}

function factsTable(f: ViewerFacts): string {
  const m = f.meta;
  const rows: [string, unknown][] = [
    ['recording', m.id], ['protocol', m.protocol], ['user', m.user], ['login', m.login], ['target', m.target],
    ['database', m.database], ['client', m.clientAddress], ['grant', m.grantId], ['start', m.start], ['end', m.end], ['end reason', m.endReason],
    ['sha256', f.sha256], ['seal', `audit log entry ${f.sealEntry}`],
    ['checkpoint', `${f.checkpoint.size} entries, signed ${f.checkpoint.time} by key ${f.checkpoint.key_id}`],
  ];
  return rows.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('\n');
}

const SQL_TIMELINE = `
const out = document.getElementById('timeline');
for (const line of window.PAM_RECORDING.split('\\n')) {
  if (!line) continue;
  let ev;
  try { ev = JSON.parse(line); } catch { continue; }
  const tr = document.createElement('tr');
  const cell = (t) => { const td = document.createElement('td'); td.textContent = t == null ? '' : String(t); tr.appendChild(td); };
  cell(ev.t);
  cell(ev.type);
  cell(ev.sql ?? ev.reason ?? '');
  cell(ev.error ? 'ERROR ' + (ev.error.sqlstate ?? '') + ' ' + (ev.error.message ?? '') : (ev.tag ?? ''));
  cell(ev.verdict ? JSON.stringify(ev.verdict) : '');
  out.appendChild(tr);
}`;

const RAW_TIMELINE = `
const out = document.getElementById('timeline');
for (const [t, kind, stream, channel, text] of window.PAM_RECORDING.frames) {
  const tr = document.createElement('tr');
  for (const v of [t, kind, stream, channel]) { const td = document.createElement('td'); td.textContent = String(v); tr.appendChild(td); }
  const td = document.createElement('td'); const pre = document.createElement('pre'); pre.textContent = text; td.appendChild(pre); tr.appendChild(td);
  out.appendChild(tr);
}`;

/** A raw (no-pty) SSH recording as rows: ms, frame type, stream, channel, payload as text. */
function rawRows(recording: Buffer): { header: unknown; frames: [number, number, string, number, string][] } {
  const parser = new RawFrameParser();
  const frames: RawFrame[] = [];
  parser.push(recording, frames);
  return {
    header: parser.header,
    frames: frames.map((f) => [f.t, f.type, STREAMS[f.stream] ?? String(f.stream), f.channel, f.payload.toString('utf8')]),
  };
}

const PLAYER = `
AsciinemaPlayer.create({ data: window.PAM_RECORDING }, document.getElementById('player'), { fit: 'width' });`;

export function renderViewer(recording: Buffer, f: ViewerFacts): Record<string, string> {
  const cast = f.meta.format === 'asciicast';
  const raw = f.meta.format === 'raw';
  const heading = cast ? 'Replay' : raw ? 'Streams (stdin, stdout, stderr per channel)' : 'Statements';
  const body = cast
    ? '<div id="player"></div>'
    : raw
      ? '<table><thead><tr><th>ms</th><th>frame</th><th>stream</th><th>channel</th><th>bytes (as UTF-8)</th></tr></thead><tbody id="timeline"></tbody></table>'
      : '<table><thead><tr><th>time</th><th>event</th><th>SQL</th><th>outcome</th><th>verdict</th></tr></thead><tbody id="timeline"></tbody></table>';
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Evidence: recording ${esc(f.meta.id)}</title>
${cast ? '<link rel="stylesheet" href="player/asciinema-player.css">\n' : ''}<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
td { font-family: ui-monospace, monospace; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>Recording ${esc(f.meta.id)}</h1>
<p>Check this folder with <code>pam evidence verify DIR --public-key FILE</code> before relying on it; this page only shows it.</p>
<table id="facts">
${factsTable(f)}
</table>
<h2>${heading}</h2>
${body}
<script src="recording.js"></script>
${cast ? '<script src="player/asciinema-player.min.js"></script>\n' : ''}<script>${cast ? PLAYER : raw ? RAW_TIMELINE : SQL_TIMELINE}
</script>
</body>
</html>
`;
  const data = raw ? rawRows(recording) : recording.toString('utf8');
  return { 'index.html': html, 'recording.js': `window.PAM_RECORDING = ${JSON.stringify(data)};\n` };
}
