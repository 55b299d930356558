/**
 * Forward destinations as the target will read them, before any rule is matched: a deny for
 * `169.254.169.254:*` must also stop `2852039166:80`, `0xa9fea9fe:80`, `0251.0376.0251.0376:80`,
 * `169.254.169.254.:80` and `[::ffff:169.254.169.254]:80`, which the target's resolver turns
 * into the same address. The WHATWG URL host parser does the inet_aton-style IPv4 reading
 * (decimal, hex, octal, short forms) and IPv6 compression; IPv4-mapped IPv6 becomes its IPv4;
 * names lose a trailing dot and case. Names are also resolved here (bounded), so a rule on the
 * address applies to a name that points at it.
 *
 * `ssh -R` bind addresses go through the same reading (`bindForms`): sshd hands a specific bind
 * address to getaddrinfo, so `0`, `0x0` and `0.0.0.0.` listen on every interface as `0.0.0.0`
 * does, and `""`, `*`, `0.0.0.0` and `::` are all "every interface".
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** The canonical text of a host: an IPv4/IPv6 address, or a lower-case name without a trailing dot. */
export function canonicalHost(host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  let h: string;
  try {
    h = new URL(`http://${isIP(bare) === 6 ? `[${bare}]` : bare}/`).hostname;
  } catch {
    return bare.toLowerCase().replace(/\.+$/, '');
  }
  if (h.startsWith('[')) {
    const v6 = h.slice(1, -1);
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
    if (mapped) {
      const hi = parseInt(mapped[1]!, 16);
      const lo = parseInt(mapped[2]!, 16);
      return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    }
    return v6;
  }
  return h.replace(/\.+$/, '');
}

/** The addresses a name resolves to here (empty for addresses, on failure, or after `timeoutMs`). */
export async function resolvedAddresses(host: string, timeoutMs = 2000): Promise<string[]> {
  if (isIP(host)) return [];
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      lookup(host, { all: true, verbatim: true }),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), timeoutMs); }),
    ]);
    return [...new Set(r.map((a) => canonicalHost(a.address)))];
  } catch {
    return [];
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Every spelling of "listen on all interfaces" that sshd's `-R` bind addresses accept. */
const WILDCARD_BINDS = ['0.0.0.0', '::', '*', ''];

/**
 * An `ssh -R` bind address as the target may read it: `canonical` is what the rules decide on
 * and what the target is asked for (`0.0.0.0` for any all-interfaces spelling but `""`/`*`, which
 * stay the sshd wildcard `""`); `forms` are every text a rule may name it by (for a wildcard
 * every wildcard spelling; for a name its resolved addresses too).
 */
export async function bindForms(bindAddr: string): Promise<{ canonical: string; upstream: string; forms: string[] }> {
  const canonical = canonicalHost(bindAddr);
  if (WILDCARD_BINDS.includes(canonical)) {
    const upstream = canonical === '*' || canonical === '' ? '' : canonical;
    return { canonical: upstream === '' ? '0.0.0.0' : canonical, upstream, forms: [...new Set([...WILDCARD_BINDS, bindAddr])] };
  }
  return { canonical, upstream: canonical, forms: [...new Set([canonical, bindAddr, ...(await resolvedAddresses(canonical))])] };
}
