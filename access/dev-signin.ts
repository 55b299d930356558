/**
 * The dev issuer's browser sign-in secret (issue 12: "the dev issuer's sign-in needs a
 * one-time secret printed at start-up"). Each secret signs in once: the sign-in that uses it
 * gets a new one made, which `announce` prints on the terminal of `pam serve`, so whoever reads
 * that terminal can sign in again and nobody else can replay one they saw (a shoulder, a
 * screenshot, a shell history, a page that read the form).
 *
 * Used secrets are remembered (as SHA-256, the last few hundred) so a second use is refused as
 * such, not as a wrong secret.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** How many used secrets are remembered to say "already used" (older ones count as wrong). */
const REMEMBER_USED = 256;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export type SigninSecretCheck = 'ok' | 'used' | 'wrong';

export class DevSigninSecret {
  private current: string;
  private readonly used: Buffer[] = [];

  /** `announce` is told every new secret: the first one at construction, then one after each use. */
  constructor(private readonly announce: (secret: string, why: 'start' | 'used') => void = () => undefined) {
    this.current = DevSigninSecret.make();
    announce(this.current, 'start');
  }

  private static make(): string {
    return randomBytes(18).toString('base64url');
  }

  /** The secret that signs in now (printed by `pam serve`). */
  get value(): string {
    return this.current;
  }

  /**
   * Checks `given` and, when it is the current secret, uses it up: the next sign-in needs the
   * new one. Constant time in the comparison with the current secret.
   */
  take(given: string): SigninSecretCheck {
    const g = digest(given);
    if (timingSafeEqual(g, digest(this.current)) && given === this.current) {
      this.used.push(g);
      if (this.used.length > REMEMBER_USED) this.used.shift();
      this.current = DevSigninSecret.make();
      this.announce(this.current, 'used');
      return 'ok';
    }
    return this.used.some((u) => u.equals(g)) ? 'used' : 'wrong';
  }
}
