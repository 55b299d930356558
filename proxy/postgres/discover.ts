import type { PostgresTarget } from '../../config/config.types.js';
import type { DiscoveryProbe, FoundAccount } from '../../access/discovery.js';
import { openAdminSession } from './admin-session.js';

/** Roles with superuser, createrole, replication or bypassrls (pg_roles is readable by any role). */
const SQL = `SELECT rolname, rolsuper, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin FROM pg_roles
  WHERE (rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls) AND rolname NOT LIKE 'pg\\_%' ORDER BY rolname`;

export function postgresDiscovery(): DiscoveryProbe {
  return {
    async probe(target, login, credential): Promise<FoundAccount[]> {
      const s = await openAdminSession(target as PostgresTarget, login, credential);
      try {
        return (await s.query(SQL)).map(([name, sup, cr, rep, bypass, canLogin]) => ({
          account: name!,
          privileges: [sup === 't' && 'superuser', cr === 't' && 'createrole', rep === 't' && 'replication', bypass === 't' && 'bypassrls', canLogin !== 't' && '(no login)']
            .filter((p): p is string => typeof p === 'string'),
        }));
      } finally {
        s.close();
      }
    },
  };
}
