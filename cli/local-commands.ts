import { join } from 'node:path';
import { loadConfig } from '../config/config.js';
import type { Config } from '../config/config.types.js';
import { openStore } from '../access/store.js';
import { openVault } from '../access/vault.js';
import { FileAuditLog } from '../recorder/audit-log.js';
import { loadDevIssuer } from '../access/dev-issuer.js';
import { CliError } from './api-client.js';
import { RotationService, type RotationDeps } from '../access/rotation.js';
import { printRows } from './table.js';
import { auditEvent } from '../recorder/audit-events.js';

export { configPath } from './config-path.js';


async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) process.stderr.write('Secret value (end with Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Secrets work on the configured store directly, with or without a running proxy. */
export async function secretCommand(config: Config, verb: string | undefined, name: string | undefined, json: boolean, rotators: RotationDeps['rotators'] = {}): Promise<void> {
  // With the embedded store the running proxy owns the state files; secrets live in their own
  // files then, so this works with or without a running proxy.
  const store = config.store === 'embedded' ? undefined : await openStore(config.store, config.dataDir);
  const audit = await FileAuditLog.open(join(config.dataDir, 'audit.log'));
  try {
    const vault = await openVault(config.store, store!, config.dataDir);
    const actor = process.env.SUDO_USER ?? process.env.USER ?? 'local';
    switch (verb) {
      case 'set': {
        if (!name) throw new CliError('usage: pam secret set NAME < value', 2);
        let value = await readStdin();
        // A password typed or echoed ends with a newline that is not part of it; keys keep theirs.
        if (!value.includes('PRIVATE KEY')) value = Buffer.from(value.toString('utf8').replace(/\r?\n$/, ''));
        await vault.set(name, value);
        value.fill(0);
        await audit.append(auditEvent('secret.set', { actor, via: 'cli', name }));
        process.stdout.write(json ? JSON.stringify({ name, stored: true }) + '\n' : `stored secret ${name}\n`);
        return;
      }
      case 'list': {
        const rows = await new RotationService({ vault, targets: () => config.targets, rotators: {}, audit }).status();
        if (json) return void process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        return printRows(rows.map((r) => ({
          name: r.name, used_by: r.usedBy.join(', ') || '-', last_rotated: r.lastRotated ?? 'never', next_due: r.nextDue ?? '-', last_error: r.lastError ? `${r.lastErrorAt}: ${r.lastError}` : '-',
        })), ['name', 'used_by', 'last_rotated', 'next_due', 'last_error'], false, rows);
      }
      case 'rotate': {
        if (!name) throw new CliError('usage: pam secret rotate NAME', 2);
        const r = await new RotationService({ vault, targets: () => config.targets, rotators, audit }).rotate(name, actor, 'pam secret rotate');
        if (json) process.stdout.write(JSON.stringify(r) + '\n');
        if (!r.ok) throw new CliError(r.error ?? 'rotation failed');
        if (!json) process.stdout.write(`rotated ${name} at its target and in the vault\n`);
        return;
      }
      case 'rm': {
        if (!name) throw new CliError('usage: pam secret rm NAME', 2);
        if (!(await vault.remove(name))) throw new CliError(`no secret named ${name}`);
        await audit.append(auditEvent('secret.remove', { actor, via: 'cli', name }));
        process.stdout.write(json ? JSON.stringify({ name, removed: true }) + '\n' : `removed secret ${name}\n`);
        return;
      }
      default:
        throw new CliError('usage: pam secret set NAME | list | rm NAME | rotate NAME', 2);
    }
  } finally {
    await audit.close();
    await store?.close();
  }
}

export async function devTokenCommand(configFile: string, user: string | undefined, groups: string | undefined, ttl: string | undefined): Promise<void> {
  if (!user) throw new CliError('usage: pam dev token USER [--groups g1,g2] [--ttl 8h]', 2);
  const config = loadConfig(configFile);
  if (!config.identity.dev) throw new CliError(`${config.file} does not use the dev issuer (identity: { dev: true })`, 2);
  const { parseDuration } = await import('../config/duration.js');
  const issuer = await loadDevIssuer(config.dataDir, config.identity.audience);
  const token = await issuer.issue(user, (groups ?? '').split(',').map((g) => g.trim()).filter(Boolean), ttl ? { ttlSec: Math.floor(parseDuration(ttl) / 1000) } : undefined);
  process.stdout.write(token + '\n');
}
