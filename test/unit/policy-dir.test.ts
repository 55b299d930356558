import { expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyDir } from '../../policies/policy-dir.js';
import { loadRoles } from '../../policies/roles.js';
import { loadRules } from '../../policies/rules.js';

it('reads the same rules and roles as the two loaders, with the same refusals', () => {
  expect(loadPolicyDir('examples/policies')).toEqual({ rules: loadRules('examples/policies'), roles: loadRoles('examples/policies') });
  const dir = mkdtempSync(join(tmpdir(), 'pam-poldir-'));
  try {
    const role = 'roles:\n  - { name: dba, groups: [dba] }\n';
    writeFileSync(join(dir, 'a.yaml'), role);
    writeFileSync(join(dir, 'b.yaml'), role);
    expect(() => loadPolicyDir(dir)).toThrow(/role "dba" is defined twice/);
    expect(() => loadRoles(dir)).toThrow(/role "dba" is defined twice/);
    writeFileSync(join(dir, 'b.yaml'), 'roles: [oops');
    expect(() => loadPolicyDir(dir)).toThrow(/b\.yaml/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
