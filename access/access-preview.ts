import type { Grant } from './access.types.js';
import type { Target } from '../config/config.types.js';
import type { Role } from '../policies/roles.js';
import { mayRequest } from './capabilities.js';
import { formatDuration } from '../config/duration.js';

/**
 * Could this person open `login@target` at all, before any command rule is asked? The what-if
 * tester's access check, in plain words: the same two facts the gate and the request path use
 * (an active grant; a role whose can_request covers the target and login).
 */
export interface AccessPreview {
  /** `grant`: a session opens now; `may-request`: not until a grant is approved; `none`: never, with these roles. */
  state: 'grant' | 'may-request' | 'none' | 'unknown-login';
  /** One sentence for the security engineer. */
  words: string;
  grant?: { id: string; expiresAt: string; approvedBy: string };
  requestable?: { roles: string[]; maxDuration: string };
}

export function previewAccess(who: { user: string; groups: string[] }, roles: Role[], grants: Grant[], target: Target, login: string, now: number): AccessPreview {
  const at = `${login}@${target.name}`;
  if (!target.logins[login]) return { state: 'unknown-login', words: `Target ${target.name} has no login "${login}": nobody can connect as it.` };
  const active = grants
    .filter((g) => g.user === who.user && g.target === target.name && g.login === login && g.startsAt <= now && g.expiresAt > now)
    .sort((a, b) => b.expiresAt - a.expiresAt)[0];
  if (active) {
    const until = new Date(active.expiresAt).toISOString().replace(/\.\d+Z$/, 'Z');
    return {
      state: 'grant', grant: { id: active.id, expiresAt: new Date(active.expiresAt).toISOString(), approvedBy: active.approvedBy },
      words: `${who.user} holds an active grant for ${at} until ${until} (approved by ${active.approvedBy}): a session opens, and each command is judged by the rules.`,
    };
  }
  const cover = mayRequest(who, roles, target.name, login);
  if (cover) {
    const maxDuration = formatDuration(cover.maxDurationMs);
    return {
      state: 'may-request', requestable: { roles: cover.roles, maxDuration },
      words: `${who.user} has no active grant for ${at}, so cannot connect now. Role ${cover.roles.join(', ')} lets them ask for one (up to ${maxDuration}); the verdict below applies once it is approved.`,
    };
  }
  const held = roles.filter((r) => r.groups.some((g) => who.groups.includes(g))).map((r) => r.name);
  return {
    state: 'none',
    words: `${who.user} could not connect to ${at} at all: no active grant, and ${held.length ? `none of their roles (${held.join(', ')})` : 'they hold no role that'} may request it.`,
  };
}
