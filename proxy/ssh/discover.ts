/**
 * SSH discovery: on the target, accounts with uid 0, members of sudo/wheel/admin (listed or by
 * primary group) and accounts with authorized keys (~/.ssh/authorized_keys, authorized_keys2
 * and the target's `rotation.authorized_keys`). One POSIX sh script over the pinned maintenance
 * connection; it prints `KIND ACCOUNT` lines that are parsed here. Reading other people's key
 * files needs the probing login to be root; without it those accounts go unseen.
 */
import type { SshTarget } from '../../config/config.types.js';
import type { DiscoveryProbe, FoundAccount } from '../../access/discovery.js';
import { openAdminSsh } from './admin-session.js';

export function discoveryScript(keysTemplate: string | undefined): string {
  const extra = keysTemplate && /^(~\/)?[A-Za-z0-9_./%-]+$/.test(keysTemplate) ? keysTemplate : '';
  return [
    `getent passwd | awk -F: '$3 == 0 { print "uid0 " $1 }'`,
    `for g in sudo wheel admin; do getent group "$g" | awk -F: -v g="$g" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] != "") print "group:" g " " m[i]; print "gid:" g " " $3 }'; done`,
    `t='${extra}'`,
    `getent passwd | while IFS=: read -r name pw uid gid gecos home shell; do`,
    `  echo "pgid $name $gid"`,
    `  files="$home/.ssh/authorized_keys $home/.ssh/authorized_keys2"`,
    `  if [ -n "$t" ]; then x=$(printf '%s' "$t" | sed "s/%u/$name/g; s#^~/#$home/#"); files="$files $x"; fi`,
    `  for f in $files; do`,
    `    if [ -r "$f" ] && grep -qE '^[^#[:space:]]' "$f" 2>/dev/null; then`,
    // A file without %u or ~ is shared by every account that can log in at all.
    `      case "$shell" in */nologin|*/false) [ "$f" = "$t" ] && continue ;; esac`,
    `      echo "keys $name"; break`,
    `    fi`,
    `  done`,
    `done`,
  ].join('\n');
}

/** Parses the script's lines into accounts with their privileges. */
export function parseDiscovery(out: string): FoundAccount[] {
  const priv = new Map<string, Set<string>>();
  const add = (acct: string, p: string) => {
    if (!priv.has(acct)) priv.set(acct, new Set());
    priv.get(acct)!.add(p);
  };
  const groupGid = new Map<string, string>();
  const primary: [string, string][] = [];
  for (const line of out.split('\n')) {
    const [kind, acct, gid] = line.trim().split(/\s+/);
    if (!kind || !acct) continue;
    if (kind === 'uid0') add(acct, 'uid 0');
    else if (kind.startsWith('group:')) add(acct, `group ${kind.slice(6)}`);
    else if (kind.startsWith('gid:')) groupGid.set(acct, kind.slice(4));
    else if (kind === 'pgid' && gid) primary.push([acct, gid]);
    else if (kind === 'keys') add(acct, 'authorized keys');
  }
  for (const [acct, gid] of primary) {
    for (const [g, name] of groupGid) if (g === gid) add(acct, `group ${name}`);
  }
  return [...priv].map(([account, p]) => ({ account, privileges: [...p].sort() }));
}

export function sshDiscovery(): DiscoveryProbe {
  return {
    async probe(target, login, credential) {
      const t = target as SshTarget;
      const s = await openAdminSsh(t, login, credential);
      try {
        const r = await s.run('sh -s', discoveryScript(t.rotation?.authorizedKeys));
        if (r.code !== 0) throw new Error(`the discovery script failed (exit ${r.code}): ${r.stderr.trim().slice(0, 300)}`);
        return parseDiscovery(r.stdout);
      } finally {
        s.close();
      }
    },
  };
}
