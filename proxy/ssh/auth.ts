import { createRequire } from 'node:module';
import ssh2 from 'ssh2';
import type { Identity } from '../../access/identity.types.js';

type AuthContext = ssh2.AuthContext;

/** `LOGIN@TARGET`, split at the last '@' (a login may itself contain '@'). */
export function parseUsername(username: string): { login: string; target: string } | undefined {
  const at = username.lastIndexOf('@');
  if (at <= 0 || at === username.length - 1) return undefined;
  return { login: username.slice(0, at), target: username.slice(at + 1) };
}

/** Optional key lookup for `pam login --key` bindings (the control plane's SshKeyBindings). */
export interface SshKeyLookup {
  lookup(blob: Buffer): Promise<Identity | undefined>;
}

export type Credential = { kind: 'token'; token: string } | { kind: 'key'; identity: Identity };

export const TOKEN_PROMPT = 'IAM token: ';

/**
 * Turns one authentication attempt into a credential, or undefined when the attempt cannot
 * carry one (the method is then rejected and the client tries the next). Keyboard-interactive
 * and password both carry the IAM token; publickey works for keys bound to an identity.
 */
export async function readCredential(ctx: AuthContext, keys: SshKeyLookup | undefined): Promise<Credential | 'answered' | undefined> {
  switch (ctx.method) {
    case 'password':
      return ctx.password ? { kind: 'token', token: ctx.password.trim() } : undefined;
    case 'keyboard-interactive':
      return new Promise((resolve) => {
        ctx.prompt([{ prompt: TOKEN_PROMPT, echo: false }], 'pam-proxy', '', (answers) => {
          const token = Array.isArray(answers) ? answers[0]?.trim() : undefined;
          resolve(token ? { kind: 'token', token } : undefined);
        });
      });
    case 'publickey': {
      if (!keys) return undefined;
      const identity = await keys.lookup(ctx.key.data);
      if (!identity) return undefined;
      if (!ctx.signature || !ctx.blob) {
        // Query without signature: tell the client this key would do (PK_OK).
        ctx.accept();
        return 'answered';
      }
      const key = parseKeyBlob(ctx.key.data);
      if (!key || key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return undefined;
      return { kind: 'key', identity };
    }
    default:
      return undefined;
  }
}

function parseKeyBlob(blob: Buffer): ssh2.ParsedKey | undefined {
  if (blob.length < 4 || blob.readUInt32BE(0) > blob.length - 4) return undefined;
  const keyType = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString();
  const parsed = ssh2.utils.parseKey(`${keyType} ${blob.toString('base64')}`);
  if (parsed instanceof Error || Array.isArray(parsed)) return undefined;
  return parsed;
}

const { sendPacket } = createRequire(import.meta.url)('ssh2/lib/protocol/utils.js') as { sendPacket: (proto: unknown, packet: Buffer) => void };
const USERAUTH_BANNER = 53;

/**
 * Sends SSH_MSG_USERAUTH_BANNER (RFC 4252 §5.4) during authentication: the only way to show a
 * password-method user why the login was refused. ssh2 sends a banner only once, from its
 * static config, so this builds the packet through ssh2's internal writer (pinned ssh2 1.x).
 *
 *   byte USERAUTH_BANNER | string message | string language tag
 */
export function sendBanner(conn: ssh2.Connection, message: string): boolean {
  try {
    const proto = (conn as unknown as { _protocol: { _packetRW: { write: { allocStart: number; alloc(n: number): Buffer; finalize(b: Buffer): Buffer } } } })._protocol;
    const rw = proto._packetRW.write;
    const text = message.endsWith('\r\n') ? message : `${message}\r\n`;
    const len = Buffer.byteLength(text);
    let p = rw.allocStart;
    const packet = rw.alloc(1 + 4 + len + 4);
    packet[p] = USERAUTH_BANNER;
    packet.writeUInt32BE(len, ++p);
    packet.write(text, (p += 4), len, 'utf8');
    packet.writeUInt32BE(0, p + len);
    sendPacket(proto, rw.finalize(packet));
    return true;
  } catch {
    return false;
  }
}

const DISCONNECT = 1;
/** RFC 4253 §11.1 reason codes we use. */
export const DisconnectReason = { PROTOCOL_ERROR: 2, SERVICE_NOT_AVAILABLE: 7, BY_APPLICATION: 11, NO_MORE_AUTH_METHODS_AVAILABLE: 14 } as const;

/**
 * Sends SSH_MSG_DISCONNECT with a description (RFC 4253 §11.1), which OpenSSH prints as
 * "Received disconnect from …: TEXT"; ssh2's own disconnect sends an empty description.
 *
 *   byte DISCONNECT | uint32 reason code | string description | string language tag
 */
export function sendDisconnect(conn: ssh2.Connection, reason: number, description: string): boolean {
  try {
    const proto = (conn as unknown as { _protocol: { _packetRW: { write: { allocStartKEX: number; alloc(n: number, force?: boolean): Buffer; finalize(b: Buffer, force?: boolean): Buffer } } } })._protocol;
    const rw = proto._packetRW.write;
    const len = Buffer.byteLength(description);
    let p = rw.allocStartKEX;
    const packet = rw.alloc(1 + 4 + 4 + len + 4, true);
    packet[p] = DISCONNECT;
    packet.writeUInt32BE(reason, ++p);
    packet.writeUInt32BE(len, (p += 4));
    packet.write(description, (p += 4), len, 'utf8');
    packet.writeUInt32BE(0, p + len);
    sendPacket(proto, rw.finalize(packet, true));
    return true;
  } catch {
    return false;
  }
}
