/**
 * Key-binding challenges are capped (issue 12, access/challenge-quota.ts): at most
 * MAX_CHALLENGES_PER_SUBJECT open per subject and MAX_CHALLENGES_PER_SOURCE per client address;
 * one more is refused (429 with Retry-After over HTTP) and audited; an answered challenge frees
 * its slot and an unanswered one frees it when it expires. Against the real `pam serve` process
 * for the HTTP path, and on the real embedded store with a moved clock for the expiry (the store's
 * own TTL runs on real time, so nothing here waits two minutes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateEd25519 } from '../../proxy/ssh/ed25519-keygen.js';
import { openStore, type Store } from '../../access/store.js';
import { FileAuditLog } from '../../recorder/audit-log.js';
import { KeyBindingError, MAX_CHALLENGES_PER_SOURCE, MAX_CHALLENGES_PER_SUBJECT, SshKeyBindings } from '../../access/ssh-keys.js';
import type { Identity } from '../../access/identity.types.js';
import { startPamProcess, PROCESS_ROLES, type PamProcess } from '../helpers/pam-process.js';
import { bindKeyWithProof } from '../helpers/key-binding.js';

let pam: PamProcess;

beforeAll(async () => {
  pam = await startPamProcess({ roles: PROCESS_ROLES });
}, 60_000);

afterAll(async () => {
  await pam?.stop();
});

const who = (user: string) => ({ user, subject: `sub-${user}`, issuer: 'test', groups: [], expiresAt: Date.now() + 3600_000 }) as Identity;

describe('key-binding challenges', () => {
  it('caps open challenges per subject and per address over HTTP, with Retry-After, and audits each refusal', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pam-kc-'));
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', join(dir, 'id')]);
      const pub = (await readFile(join(dir, 'id.pub'), 'utf8')).trim();
      const ask = async (token: string) => fetch(`${pam.server}/api/v1/ssh-keys/challenge`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ public_key: pub }),
      });
      const bob = await pam.token('bob', 'dba');
      for (let i = 0; i < MAX_CHALLENGES_PER_SUBJECT; i++) expect((await ask(bob)).status).toBe(201);
      const full = await ask(bob);
      expect(full.status).toBe(429);
      expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await full.json()) as { error: { message: string } }).error.message).toContain(`your identity already has ${MAX_CHALLENGES_PER_SUBJECT} open key-binding challenges`);

      // The real CLI asks for a challenge too: refused, and it says why.
      const cli = await pam.pam(['login', '--key', join(dir, 'id.pub')], { PAM_TOKEN: bob, SSH_AUTH_SOCK: '' });
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain('open key-binding challenges');

      // Per address: other people from the same address fill it up to MAX_CHALLENGES_PER_SOURCE.
      let open = MAX_CHALLENGES_PER_SUBJECT;
      for (let u = 0; open < MAX_CHALLENGES_PER_SOURCE; u++) {
        const t = await pam.token(`user${u}`, 'dba');
        for (let i = 0; i < MAX_CHALLENGES_PER_SUBJECT && open < MAX_CHALLENGES_PER_SOURCE; i++, open++) expect((await ask(t)).status).toBe(201);
      }
      const fresh = await ask(await pam.token('carol', 'dba'));
      expect(fresh.status).toBe(429);
      expect(((await fresh.json()) as { error: { message: string } }).error.message).toContain('your address already has');

      const sam = await pam.token('sam', 'security');
      const audit = JSON.parse((await pam.pam(['audit', '--json', '--since', '1h'], { PAM_TOKEN: sam })).stdout) as { type: string; actor?: string; why?: string }[];
      const refused = audit.filter((e) => e.type === 'ssh-key.refused' && e.why?.startsWith('too many open challenges'));
      expect(refused.map((e) => e.actor)).toEqual(['bob', 'bob', 'carol']);
      expect(audit.some((e) => e.type === 'ssh-key.bind')).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('frees a slot when a challenge is answered or expires (embedded store, moved clock)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pam-kc-store-'));
    let store: Store | undefined;
    try {
      store = await openStore('embedded', dir);
      const audit = await FileAuditLog.open(join(dir, 'audit.log'));
      let now = Date.now();
      const keys = new SshKeyBindings(store, audit, () => now);
      const pair = generateEd25519('test');
      const dana = who('dana');
      const taken = [];
      for (let i = 0; i < MAX_CHALLENGES_PER_SUBJECT; i++) taken.push(await keys.challenge(dana, pair.public, '10.0.0.1'));
      await expect(keys.challenge(dana, pair.public, '10.0.0.1')).rejects.toMatchObject({ code: 'busy' });
      // Another subject is not held back by dana's.
      await keys.challenge(who('erin'), pair.public, '10.0.0.2');
      // Answered: the binding's own challenge needs a slot, so free one by answering it wrongly first.
      await expect(keys.bind(dana, pair.public, { challenge: taken[0]!.challenge, signature: Buffer.alloc(10) })).rejects.toBeInstanceOf(KeyBindingError);
      const binding = await bindKeyWithProof(keys, dana, pair);
      expect(binding.identity.user).toBe('dana');
      await keys.challenge(dana, pair.public, '10.0.0.1');
      await expect(keys.challenge(dana, pair.public, '10.0.0.1')).rejects.toMatchObject({ code: 'busy' });
      // Expired: two minutes on, every slot is free again, and the old challenges are refused.
      now += 2 * 60_000 + 1;
      for (let i = 0; i < MAX_CHALLENGES_PER_SUBJECT; i++) await keys.challenge(dana, pair.public, '10.0.0.1');
      await expect(keys.bind(dana, pair.public, { challenge: taken[1]!.challenge, signature: Buffer.alloc(10) })).rejects.toMatchObject({ code: 'bad-proof' });
      const lines = (await audit.read()).filter((e) => e.type === 'ssh-key.refused').map((e) => (e as { why?: string }).why);
      expect(lines.filter((w) => w?.startsWith('too many open challenges'))).toHaveLength(2);
      await audit.close();
    } finally {
      await store?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
