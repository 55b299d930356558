/**
 * The login steps of a Postgres session, between the password message and the upstream login:
 * verify the IAM token, authorize the login against the grants, reveal the credential from the
 * vault and open the upstream connection. Each step audits its own refusal or failure and
 * throws a `SessionFatal` carrying what the client is told.
 */

import { AccessDenied, type Authorized } from '../../access/access.types.js';
import { TokenRejected, type Identity } from '../../access/identity.types.js';
import type { BrokerDeps } from '../broker.types.js';
import type { PostgresTarget } from '../../config/config.types.js';
import { connectUpstream, type UpstreamConnection } from './upstream.js';

/** The client is told this error, then the connection closes. */
export class SessionFatal extends Error {
  constructor(public readonly sqlstate: string, message: string) {
    super(message);
    this.name = 'SessionFatal';
  }
}

/** The IAM token (sent as the password) to an identity; a rejected token is audited and refused with 28P01. */
export async function verifyToken(deps: BrokerDeps, token: string, who: { database: string; login: string; client: string }): Promise<Identity> {
  try {
    return await deps.identity.verify(token);
  } catch (err) {
    const reason = err instanceof TokenRejected ? err.reason : 'could not verify the token';
    void deps.audit.append({ type: 'session.refused', protocol: 'postgres', target: who.database, login: who.login, client: who.client, why: `token rejected: ${reason}` }).catch(() => {});
    throw new SessionFatal('28P01', `IAM token rejected: ${reason}. Use a fresh token from your identity provider as the password`);
  }
}

/** The grant check; only its `Authorized` value opens an upstream. A denial is refused with 28000. */
export async function authorizeLogin(deps: BrokerDeps, identity: Identity, database: string, login: string): Promise<Authorized> {
  try {
    return await deps.gate.authorize(identity, database, login, 'postgres');
  } catch (err) {
    if (err instanceof AccessDenied) throw new SessionFatal('28000', err.message);
    throw err;
  }
}

/** Reveals the login's credential and logs in upstream; the credential is wiped whatever happens. */
export async function openUpstream(
  deps: BrokerDeps,
  identity: Identity,
  target: PostgresTarget,
  login: string,
  params: Record<string, string>,
): Promise<UpstreamConnection> {
  let password: Buffer;
  try {
    password = await deps.vault.reveal(target.logins[login]!.secret);
  } catch (err) {
    void deps.audit.append({ type: 'session.failed', actor: identity.user, protocol: 'postgres', target: target.name, login, why: `credential unavailable: ${(err as Error).message}` }).catch(() => {});
    throw new SessionFatal('08006', `the credential for ${login}@${target.name} is not available on this proxy; ask an administrator`);
  }
  try {
    return await connectUpstream({ target, login, password, params });
  } catch (err) {
    void deps.audit.append({ type: 'session.failed', actor: identity.user, protocol: 'postgres', target: target.name, login, why: (err as Error).message }).catch(() => {});
    throw new SessionFatal('08006', `cannot connect to target "${target.name}": ${(err as Error).message}`);
  } finally {
    password.fill(0);
  }
}
