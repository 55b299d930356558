/**
 * Signs a key-binding challenge for `pam login --key FILE.pub`: with the private key beside
 * the public one (FILE without `.pub`) when it is there and unencrypted, else with the
 * ssh-agent at SSH_AUTH_SOCK holding that key. The private key never leaves this process.
 */
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import { ecdsaP1363ToSsh, encodeSignature, proofPreimage, signatureAlgorithmFor } from '../access/key-proof.js';
import { CliError } from './api-client.js';

type ParsedKey = ssh2.ParsedKey;

function parseOne(text: string): ParsedKey | Error {
  const k = ssh2.utils.parseKey(text);
  return Array.isArray(k) ? k[0]! : k;
}

async function signWithFile(privateFile: string, pub: ParsedKey, data: Buffer): Promise<Buffer | string> {
  let text: string;
  try {
    text = await readFile(privateFile, 'utf8');
  } catch {
    return `no private key at ${privateFile}`;
  }
  const priv = parseOne(text);
  if (priv instanceof Error) return /encrypt|passphrase/i.test(priv.message) ? `${privateFile} is encrypted` : `${privateFile}: ${priv.message}`;
  if (!priv.isPrivateKey()) return `${privateFile} is not a private key`;
  if (!priv.getPublicSSH().equals(pub.getPublicSSH())) return `${privateFile} does not match the public key`;
  const { algorithm, hash } = signatureAlgorithmFor(pub.type);
  const key = createPrivateKey(priv.getPrivatePEM());
  const raw = cryptoSign(hash, data, { key, dsaEncoding: 'ieee-p1363' });
  return encodeSignature(algorithm, pub.type.startsWith('ecdsa-') ? ecdsaP1363ToSsh(raw) : raw);
}

async function signWithAgent(sock: string, pub: ParsedKey, data: Buffer): Promise<Buffer | string> {
  const agent = new ssh2.OpenSSHAgent(sock);
  const keys = await new Promise<ParsedKey[]>((resolve, reject) => agent.getIdentities((err, k) => (err ? reject(err) : resolve((k ?? []) as unknown as ParsedKey[])))).catch((e: Error) => e);
  if (keys instanceof Error) return `ssh-agent at ${sock}: ${keys.message}`;
  const match = keys.find((k) => k.getPublicSSH().equals(pub.getPublicSSH()));
  if (!match) return 'the ssh-agent does not hold this key (ssh-add it)';
  const { algorithm } = signatureAlgorithmFor(pub.type);
  const raw = await new Promise<Buffer>((resolve, reject) => agent.sign(match, data, { hash: 'sha512' }, (err, sig) => (err || !sig ? reject(err ?? new Error('no signature')) : resolve(sig)))).catch((e: Error) => e);
  if (raw instanceof Error) return `ssh-agent refused to sign: ${raw.message}`;
  // The agent answers ECDSA in SSH form already (mpint r, mpint s), ed25519 and RSA raw.
  return encodeSignature(algorithm, raw);
}

/** The SSH wire signature of the challenge's proof preimage by the key in `publicFile`. */
export async function signChallenge(publicFile: string, publicKeyLine: string, challenge: string, env = process.env): Promise<Buffer> {
  const pub = parseOne(publicKeyLine);
  if (pub instanceof Error || pub.isPrivateKey()) throw new CliError(`${publicFile} is not an OpenSSH public key (pass the .pub file)`, 2);
  const data = proofPreimage(challenge);
  const tried: string[] = [];
  if (publicFile.endsWith('.pub')) {
    const r = await signWithFile(publicFile.slice(0, -4), pub, data);
    if (Buffer.isBuffer(r)) return r;
    tried.push(r);
  }
  if (env.SSH_AUTH_SOCK) {
    const r = await signWithAgent(env.SSH_AUTH_SOCK, pub, data);
    if (Buffer.isBuffer(r)) return r;
    tried.push(r);
  } else {
    tried.push('no ssh-agent (SSH_AUTH_SOCK is not set)');
  }
  throw new CliError(`cannot prove you hold the private key: ${tried.join('; ')}`);
}
