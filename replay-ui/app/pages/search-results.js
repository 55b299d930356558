import { h, notice, fmtTime, fmtOffset } from '../dom.js';
import { marked, matcher } from '../highlight.js';

// One page of search hits as the sessions page shows them: grouped per recording, then per moment.

/** Hits of one recording this close (seconds) are one moment: a typed command, its echo and its marker. */
const MOMENT = 2.5;
const KIND_ORDER = ['command', 'sql', 'marker', 'output'];
/** The recorders' clock tick: event times are whole milliseconds. */
const TICK = 0.001;

/** Adds a page of hits to the groups: per recording, then per moment (kinds listed, texts kept once). */
export function addHits(recs, hits) {
  for (const hit of hits) {
    let rec = recs.get(hit.recording);
    if (!rec) recs.set(hit.recording, (rec = { hit, moments: [] }));
    const text = hit.command ? hit.command.text : hit.snippet;
    // One command per moment: lines run close together stay results of their own; an output or
    // marker hit joins the moment whose command it names, else the first one close enough.
    const close = rec.moments.filter((g) => Math.abs(g.t - hit.t) <= MOMENT && (!hit.command || !g.command || g.command.text === hit.command.text));
    let m = close.find((g) => g.command && text.includes(g.command.text)) ?? close[0];
    if (!m) rec.moments.push((m = { t: hit.t, time: hit.time, kinds: new Set(), texts: [], command: undefined, judged: undefined }));
    m.kinds.add(hit.kind);
    if (hit.command && !m.command) m.command = hit.command;
    // Where to replay from: the latest of the moment's hits, so the match is on the screen (an
    // output chunk is timed from its start; the echo of a judged line may come after its marker).
    if (hit.t > m.t) { m.t = hit.t; m.time = hit.time; }
    // A denied shell line is erased at its verdict (the gate sends CLEAR_LINE, proxy/ssh/enter-gate.ts)
    // and the target's redraw is recorded a round trip later, in the verdict's own ms or the next:
    // the line as judged (after 40 ms of quiet) is on the screen in the tick before the verdict.
    if (hit.kind === 'command' && hit.command?.via === 'shell' && hit.command.verdict === 'deny') m.judged = hit.t;
    if (!m.texts.some((x) => x.text === text)) m.texts.push({ kind: hit.kind, text });
  }
}

/** Where a moment's link replays from (recording seconds): a screen that shows its match. */
export function landing(m) {
  return m.judged !== undefined ? Math.max(0, m.judged - TICK) : m.t;
}

function momentRow(id, m, q, re) {
  const href = `#/recording/${encodeURIComponent(id)}?t=${landing(m).toFixed(3)}&q=${encodeURIComponent(q)}`;
  const c = m.command;
  const kinds = [...m.kinds].sort((a, b) => KIND_ORDER.indexOf(a) - KIND_ORDER.indexOf(b));
  const texts = [...m.texts].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  return h('li', { class: 'hit', 'data-kinds': kinds.join(',') },
    h('a', { href, class: 'hit-link' }, fmtTime(m.time), ' · at ', fmtOffset(m.t)),
    ' ', ...kinds.map((k) => h('span', { class: `badge kind ${k}` }, k)),
    c ? h('span', { class: `badge verdict ${c.verdict === 'deny' ? 'deny' : ''}` }, c.rule ? `${c.verdict} (${c.rule})` : c.verdict) : null,
    c?.outcome ? h('span', { class: 'muted outcome' }, ` ${c.outcome}`) : null,
    ...texts.map((x) => h('pre', { class: `snippet ${x.kind}` }, ...marked(x.text, re))));
}

export function resultsOf(recs, q) {
  const re = matcher(q);
  return [...recs.entries()].map(([id, rec]) => h('section', { class: 'hit-rec', 'data-recording': id },
    h('h3', {}, h('a', { href: `#/recording/${encodeURIComponent(id)}?q=${encodeURIComponent(q)}`, class: 'rec-link' }, `${rec.hit.user}@${rec.hit.target}`),
      h('span', { class: 'muted' }, ` as ${rec.hit.login} · ${rec.hit.protocol} · started ${fmtTime(rec.hit.start)} · ${rec.moments.length} moment${rec.moments.length === 1 ? '' : 's'}`)),
    h('ul', { class: 'hits' }, ...rec.moments.map((m) => momentRow(id, m, q, re)))));
}

export function indexNote(index) {
  if (!index || index.state !== 'building') return '';
  return notice(`The search index is catching up with the recordings (${index.done} of ${index.total}); older sessions may be missing for now.`);
}
