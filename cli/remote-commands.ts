import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AccessRequest, Grant } from '../access/access.types.js';
import type { AuditEntry } from '../recorder/audit.types.js';
import type { RecordingMeta } from '../recorder/recording.types.js';
import { ApiClient, CliError, serverOf } from './api-client.js';
import { readTokenFile, removeCache, resolveToken, writeCache } from './token-source.js';
import { auditVerifyText, recordingVerifyText, type AuditVerifyReply, type RecordingVerifyReply } from './verify-text.js';
import type { OffboardResult } from '../access/offboarding.js';
import { iso, printRows } from './table.js';
import { signChallenge } from './key-signer.js';

export interface Flags { [k: string]: string | boolean | undefined }

const str = (f: Flags, k: string) => (typeof f[k] === 'string' ? (f[k] as string) : undefined);
const need = (v: string | undefined, usage: string) => {
  if (!v) throw new CliError(`usage: ${usage}`, 2);
  return v;
};

function printRequest(r: AccessRequest, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  process.stdout.write(`${r.id}  ${r.status}  ${r.user} → ${r.login}@${r.target} for ${Math.round(r.durationMs / 60000)}m: ${r.reason}\n`);
  if (r.grantId) process.stdout.write(`grant ${r.grantId}\n`);
}

/** Commands that act through the proxy's HTTP API with the caller's token. */
export async function remoteCommand(cmd: string, args: string[], f: Flags): Promise<void> {
  const server = serverOf(str(f, 'server'));
  const json = f.json === true;
  if (cmd === 'logout') return void process.stdout.write(`removed ${await removeCache()}\n`);
  if (cmd === 'login' && !str(f, 'key')) return cacheLogin(server, f, json);
  const api = new ApiClient({ server, token: await resolveToken({ token: str(f, 'token'), tokenFile: str(f, 'token-file') }, server) });
  switch (cmd) {
    case 'search': {
      const { searchCommand } = await import('./search-command.js');
      return searchCommand(api, args, f);
    }
    case 'whoami':
      return void process.stdout.write(JSON.stringify(await api.call('GET', '/api/v1/whoami'), null, 2) + '\n');
    case 'request': {
      const usage = 'pam request --target T --login L --duration 30m --reason "…" [--json]';
      const r = await api.call<AccessRequest>('POST', '/api/v1/requests', {
        target: need(str(f, 'target'), usage), login: need(str(f, 'login'), usage), duration: need(str(f, 'duration'), usage), reason: need(str(f, 'reason'), usage),
      });
      return printRequest(r, json);
    }
    case 'approve':
    case 'deny': {
      const id = need(args[0], `pam ${cmd} ID${cmd === 'deny' ? ' --reason "…"' : ' [--reason "…"] [--duration 30m]'}`);
      if (cmd === 'deny') need(str(f, 'reason'), 'pam deny ID --reason "…"');
      // --duration: grant less time than asked (the server refuses more).
      const r = await api.call<AccessRequest>('POST', `/api/v1/requests/${encodeURIComponent(id)}/${cmd}`, { reason: str(f, 'reason'), ...(cmd === 'approve' && str(f, 'duration') ? { duration: str(f, 'duration') } : {}) });
      return printRequest(r, json);
    }
    case 'requests': {
      const rows = await api.call<AccessRequest[]>('GET', '/api/v1/requests');
      return printRows(rows.map((r) => ({ ...r, duration: `${Math.round(r.durationMs / 60000)}m`, created: iso(r.createdAt) })), ['id', 'status', 'user', 'target', 'login', 'duration', 'created', 'reason'], json, rows);
    }
    case 'grants': {
      const rows = await api.call<Grant[]>('GET', '/api/v1/grants');
      return printRows(rows.map((g) => ({ ...g, expiry: iso(g.expiresAt) })), ['id', 'user', 'target', 'login', 'expiry', 'approvedBy'], json, rows.map((g) => ({ ...g, expiry: iso(g.expiresAt) })));
    }
    case 'revoke': {
      const id = need(args[0], 'pam revoke ID [--reason "…"]');
      const g = await api.call<Grant>('POST', `/api/v1/grants/${encodeURIComponent(id)}/revoke`, { reason: str(f, 'reason') });
      return void process.stdout.write(json ? JSON.stringify(g, null, 2) + '\n' : `revoked ${g.id} (${g.user} → ${g.login}@${g.target})\n`);
    }
    case 'audit': {
      if (args[0] === 'verify') {
        const r = await api.call<AuditVerifyReply>('GET', '/api/v1/audit/verify');
        process.stdout.write(json ? JSON.stringify(r) + '\n' : auditVerifyText(r));
        if (!r.ok) process.exitCode = 1;
        return;
      }
      const since = str(f, 'since');
      const rows = await api.call<AuditEntry[]>('GET', `/api/v1/audit${since ? `?since=${encodeURIComponent(since)}` : ''}`);
      if (json) return printRows([], [], true, rows);
      for (const e of rows) {
        const { seq, time, type, actor, prev: _p, hash: _h, ...rest } = e;
        process.stdout.write(`${seq}\t${time}\t${type}\t${actor ?? '-'}\t${JSON.stringify(rest)}\n`);
      }
      return;
    }
    case 'recordings': {
      const verb = args[0] ?? 'list';
      if (verb === 'list') {
        const rows = await api.call<RecordingMeta[]>('GET', '/api/v1/recordings');
        return printRows(rows as unknown as Record<string, unknown>[], ['id', 'user', 'login', 'target', 'protocol', 'start', 'end', 'bytes', 'status'], json, rows);
      }
      if (verb === 'export') {
        const id = need(args[1], 'pam recordings export ID --format asciicast|text|jsonl|raw [--stream stdout|stderr|stdin] [--channel N] [--output FILE]');
        const q = new URLSearchParams();
        for (const k of ['format', 'stream', 'channel']) if (str(f, k)) q.set(k, str(f, k)!);
        const res = await api.raw('GET', `/api/v1/recordings/${encodeURIComponent(id)}/export${q.size ? `?${q}` : ''}`);
        const out = str(f, 'output');
        // Streamed: a raw export can be as large as the transfer it recorded.
        const body = res.body ? Readable.fromWeb(res.body as import('node:stream/web').ReadableStream) : Readable.from([]);
        await pipeline(body, out ? createWriteStream(out, { mode: 0o600 }) : process.stdout);
        return;
      }
      if (verb === 'verify') {
        const id = need(args[1], 'pam recordings verify ID');
        const r = await api.call<RecordingVerifyReply>('GET', `/api/v1/recordings/${encodeURIComponent(id)}/verify`);
        process.stdout.write(json ? JSON.stringify(r) + '\n' : recordingVerifyText(r));
        if (r.ok === false) process.exitCode = 1;
        return;
      }
      throw new CliError('usage: pam recordings list | export ID --format … | verify ID', 2);
    }
    case 'held': {
      const rows = await api.call<Record<string, unknown>[]>('GET', '/api/v1/holds');
      return printRows(rows.map((h) => ({ ...h, created: iso(h.createdAt as number) })), ['id', 'status', 'user', 'target', 'login', 'rule', 'text', 'created'], json, rows);
    }
    case 'approve-command':
    case 'deny-command': {
      const id = need(args[0], `pam ${cmd} ID [--reason "…"]`);
      const h = await api.call<{ id: string; status: string; text: string }>('POST', `/api/v1/holds/${encodeURIComponent(id)}/${cmd === 'approve-command' ? 'approve' : 'deny'}`, { reason: str(f, 'reason') });
      return void process.stdout.write(json ? JSON.stringify(h, null, 2) + '\n' : `${h.id} ${h.status}: ${h.text}\n`);
    }
    case 'sessions': {
      const rows = await api.call<Record<string, unknown>[]>('GET', '/api/v1/sessions');
      return printRows(rows, ['id', 'protocol', 'user', 'login', 'target', 'startedAt'], json, rows);
    }
    case 'kill': {
      const id = need(args[0], 'pam kill SESSION_ID [--reason "…"]');
      await api.call('POST', `/api/v1/sessions/${encodeURIComponent(id)}/kill`, { reason: str(f, 'reason') });
      return void process.stdout.write(`killed ${id}\n`);
    }
    case 'login': {
      const keyFile = need(str(f, 'key'), 'pam login --key ~/.ssh/id_ed25519.pub');
      const publicKey = (await readFile(keyFile, 'utf8')).trim();
      const { challenge } = await api.call<{ challenge: string }>('POST', '/api/v1/ssh-keys/challenge', { public_key: publicKey });
      const signature = await signChallenge(keyFile, publicKey, challenge);
      const r = await api.call<{ fingerprint: string; expiresAt: number }>('POST', '/api/v1/ssh-keys', { public_key: publicKey, challenge, signature: signature.toString('base64') });
      return void process.stdout.write(json ? JSON.stringify(r) + '\n' : `key ${r.fingerprint} bound until ${iso(r.expiresAt)}\n`);
    }
    case 'discover': {
      const name = need(args[0], 'pam discover TARGET [--json]');
      const r = await api.call<{ target: string; via: string; accounts: { account: string; privileges: string[]; managed: boolean }[] }>('GET', `/api/v1/targets/${encodeURIComponent(name)}/discover`);
      if (!json) process.stdout.write(`privileged accounts on ${r.target} (probed as ${r.via}):\n`);
      return printRows(r.accounts.map((a) => ({ account: a.account, privileges: a.privileges.join(', '), managed: a.managed ? 'yes' : 'NO' })), ['account', 'privileges', 'managed'], json, r);
    }
    case 'offboard': {
      const usage = 'pam offboard USER --reason "…" [--json]   (USER: subject or email)';
      const r = await api.call<OffboardResult>('POST', '/api/v1/offboard', { user: need(args[0], usage), reason: need(str(f, 'reason'), usage) });
      if (json) return void process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      const failed = r.credentialsRotated.filter((c) => !c.ok);
      process.stdout.write([
        `offboarded ${r.user} (subjects: ${r.subjects.join(', ')})`,
        `  grants revoked: ${r.grantsRevoked.length ? r.grantsRevoked.join(', ') : 'none'}`,
        `  pending requests denied: ${r.requestsDenied.length ? r.requestsDenied.join(', ') : 'none'}`,
        `  live sessions ended here: ${r.sessionsEnded.length ? r.sessionsEnded.join(', ') : 'none'} (other nodes end theirs from the broadcast)`,
        `  SSH key bindings removed: ${r.keyBindingsRemoved.length || 'none'}`,
        `  credentials rotated: ${r.credentialsRotated.filter((c) => c.ok).map((c) => c.secret).join(', ') || 'none'}`,
        ...failed.map((c) => `  ROTATION FAILED for ${c.secret}: ${c.error}`),
        '',
      ].join('\n'));
      if (failed.length) process.exitCode = 1;
      return;
    }
    default:
      throw new CliError(`unknown command "${cmd}" (pam help)`, 2);
  }
}

/**
 * `pam login` without --key: the token comes on stdin (or --token-file, PAM_TOKEN), is checked
 * against the proxy (whoami) and cached 0600 for later commands against the same server.
 */
async function cacheLogin(server: string, f: Flags, json: boolean): Promise<void> {
  let token: string | undefined;
  const file = str(f, 'token-file');
  if (file) token = await readTokenFile(file);
  else if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    token = Buffer.concat(chunks).toString('utf8').trim() || undefined;
  }
  token ??= process.env.PAM_TOKEN;
  if (!token) throw new CliError('usage: pam login < token-file (the token on stdin), or pam login --token-file FILE; pam login --key FILE.pub binds an SSH key', 2);
  const who = await new ApiClient({ server, token }).call<{ user: string }>('GET', '/api/v1/whoami');
  const saved = await writeCache(server, token);
  process.stdout.write(json ? JSON.stringify({ user: who.user, file: saved.file, expiresAt: saved.expiresAt }) + '\n' : `signed in as ${who.user} at ${server}; token cached in ${saved.file}${saved.expiresAt ? ` until ${iso(saved.expiresAt)}` : ''}\n`);
}
