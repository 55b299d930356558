import ssh2 from 'ssh2';

/**
 * An Ed25519 key pair in OpenSSH format that ssh2 can read back. ssh2's generateKeyPairSync
 * sometimes (about 1 in 250 here) writes a private key its own parseKey refuses as "Malformed
 * OpenSSH private key": a proxy host key or a rotated login key like that would stop the proxy
 * or lock a login out. Each pair is checked and made again until it parses.
 */
export function generateEd25519(comment?: string): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', comment ? { comment } : undefined);
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
  throw new Error('could not generate a readable Ed25519 key pair');
}
