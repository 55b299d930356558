export interface Vault {
  /** Encrypts and stores a secret (a private key or a password). */
  set(name: string, value: Buffer): Promise<void>;
  /** Decrypted value, in memory only. Callers use it to log in upstream and drop it. Throws VaultError if missing. */
  reveal(name: string): Promise<Buffer>;
  list(): Promise<string[]>;
  remove(name: string): Promise<boolean>;
}

export class VaultError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VaultError';
  }
}
