/**
 * Postgres credential rotation: a new random password, set as a SCRAM-SHA-256 verifier with
 * `ALTER ROLE … PASSWORD` through the login itself or the target's `rotation.login`.
 *
 * Order, so that a session opening at any moment finds a password the server accepts and a
 * failure leaves the old one valid: BEGIN → ALTER ROLE → vault gets the new password → COMMIT
 * → a fresh login with the new password proves it. A failure before COMMIT rolls back and
 * puts the old password back in the vault; a failed proof sets the old password again.
 */
import { randomBytes } from 'node:crypto';
import type { PostgresTarget } from '../../config/config.types.js';
import type { CredentialRotator, RotationJob } from '../../access/rotation.types.js';
import { scramVerifier } from '../../access/scram-verifier.js';
import { openAdminSession, quoteIdent, type AdminSession } from './admin-session.js';

async function canLogIn(target: PostgresTarget, login: string, password: Buffer): Promise<boolean> {
  try {
    const s = await openAdminSession(target, login, password);
    s.close();
    return true;
  } catch {
    return false;
  }
}

export function postgresRotator(): CredentialRotator {
  return {
    check: (target, login, credential) => canLogIn(target as PostgresTarget, login, credential),
    async rotate(job: RotationJob): Promise<void> {
      const target = job.target as PostgresTarget;
      // 32 characters of base64url: 192 bits, no quoting or SASLprep surprises.
      const next = Buffer.from(randomBytes(24).toString('base64url'));
      let admin: AdminSession;
      try {
        admin = await openAdminSession(target, job.via?.login ?? job.login, job.via?.secret ?? job.current);
      } catch (err) {
        throw new Error(`cannot log in to ${target.name} as ${job.via?.login ?? job.login}: ${(err as Error).message}`);
      }
      try {
        await admin.query('BEGIN');
        await admin.query(`ALTER ROLE ${quoteIdent(job.login)} PASSWORD '${scramVerifier(next)}'`);
        try {
          await job.commit(next);
        } catch (err) {
          await admin.query('ROLLBACK').catch(() => undefined);
          throw new Error(`the vault could not store the new password (${(err as Error).message}); rolled back`);
        }
        try {
          await admin.query('COMMIT');
        } catch (err) {
          // Did it commit? Only a login can tell; the vault must hold whichever works.
          if (!(await canLogIn(target, job.login, next))) {
            await job.commit(job.current);
            throw new Error(`COMMIT failed (${(err as Error).message}); the old password is still in force`);
          }
          return;
        }
        if (!(await canLogIn(target, job.login, next))) {
          await admin.query(`ALTER ROLE ${quoteIdent(job.login)} PASSWORD '${scramVerifier(job.current)}'`).catch(() => undefined);
          await job.commit(job.current);
          throw new Error('the new password did not log in (pg_hba.conf or password_encryption?); the old one was set again');
        }
      } finally {
        admin.close();
        next.fill(0);
      }
    },
  };
}
