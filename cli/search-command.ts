import type { SearchHit } from '../recorder/index/index.types.js';
import type { ApiClient } from './api-client.js';
import { CliError } from './api-client.js';
import { printRows } from './table.js';

export interface SearchFlags { [k: string]: string | boolean | undefined }

const USAGE = 'pam search [QUERY] [--user U] [--target T] [--protocol ssh|postgres] [--since 7d] [--until DATE] [--kind output|command|sql|marker|input] [--verdict allow|alert|review|deny] [--limit N] [--cursor C] [--json]';

interface SearchReply { query: string; hits: SearchHit[]; next_cursor: string | null; index: { state: string; done: number; total: number } }

/**
 * `pam search`: GET /api/v1/search with the same filters. Without QUERY it lists command events
 * (shell lines, exec requests, SQL) by the filters. One page; the next is `--cursor`.
 */
export async function searchCommand(api: ApiClient, args: string[], f: SearchFlags): Promise<void> {
  const p = new URLSearchParams();
  const query = args.join(' ').trim();
  if (query) p.set('q', query);
  for (const k of ['user', 'target', 'protocol', 'since', 'until', 'kind', 'verdict', 'limit', 'cursor']) {
    const v = f[k];
    if (typeof v === 'string') p.set(k, v);
  }
  if (!query && !p.size) throw new CliError(`usage: ${USAGE}`, 2);
  const r = await api.call<SearchReply>('GET', `/api/v1/search?${p}`);
  if (f.json === true) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  if (r.index.state === 'building') process.stderr.write(`pam: the index is catching up (${r.index.done} of ${r.index.total} recordings); results may be incomplete\n`);
  printRows(r.hits.map((h) => ({
    time: h.time.replace(/\.\d+Z$/, 'Z'), user: h.user, target: `${h.login}@${h.target}`, kind: h.kind,
    verdict: h.command ? (h.command.rule ? `${h.command.verdict} (${h.command.rule})` : h.command.verdict) : undefined,
    text: h.command ? h.command.text : h.snippet, outcome: h.command?.outcome,
    at: `${h.recording}?t=${h.t.toFixed(3)}`,
  })), ['time', 'user', 'target', 'kind', 'verdict', 'text', 'outcome', 'at'], false);
  if (r.next_cursor) process.stdout.write(`more: --cursor ${r.next_cursor}\n`);
}
