import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { combineRuleFiles, loadRules, parseRuleFile, PolicyFileError } from '../../policies/rules.js';
import { createPolicyEngine, type RunningPolicyEngine } from '../../policies/engine.js';
import { loadRoles } from '../../policies/roles.js';
import type { PolicyRequest } from '../../policies/policy.types.js';

const parse = (text: string) => parseRuleFile(YAML.parse(text), 'f.yaml');

describe('rule loader errors name file, rule and key', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['unknown top-level key', 'comand_rules: []', /^f\.yaml: comand_rules: unknown top-level key/],
    ['rules not a list', 'command_rules: {}', /command_rules: must be a list/],
    ['missing name', 'command_rules: [{ protocol: ssh, match: { regex: x }, action: deny }]', /command_rules\[0\]\.name: is required/],
    ['bad action', 'command_rules: [{ name: a, protocol: ssh, match: { regex: x }, action: block }]', /command_rules\[0\] \(a\)\.action: must be one of/],
    ['bad protocol', 'command_rules: [{ name: a, protocol: mysql, match: { regex: x }, action: deny }]', /\(a\)\.protocol: must be ssh or postgres/],
    ['invalid regex', "command_rules: [{ name: a, protocol: ssh, match: { regex: 'rm(' }, action: deny }]", /\(a\)\.match\.regex: invalid regular expression/],
    ['invalid args_regex', "command_rules: [{ name: a, protocol: ssh, match: { command: rm, args_regex: '[' }, action: deny }]", /\(a\)\.match\.args_regex: invalid regular expression/],
    ['unknown rule key', 'command_rules: [{ name: a, protocol: ssh, match: { regex: x }, action: deny, when: now }]', /\(a\)\.when: unknown key/],
    ['sql matcher on ssh', 'command_rules: [{ name: a, protocol: ssh, match: { statements: [DropStmt] }, action: deny }]', /\(a\)\.match\.statements: is a postgres matcher/],
    ['ssh matcher on postgres', 'command_rules: [{ name: a, protocol: postgres, match: { regex: x }, action: deny }]', /\(a\)\.match\.regex: is an ssh matcher/],
    ['two ssh matchers', 'command_rules: [{ name: a, protocol: ssh, match: { regex: x, command: rm }, action: deny }]', /needs exactly one of/],
    ['bad statement name', 'command_rules: [{ name: a, protocol: postgres, match: { statements: [drop] }, action: deny }]', /"drop" is not a valid libpg-query statement node name/],
    ['bad channel', 'command_rules: [{ name: a, protocol: ssh, match: { channel: telnet }, action: deny }]', /"telnet" is not one of sftp/],
    ['destination without channel', 'command_rules: [{ name: a, protocol: ssh, match: { command: rm, destination: "x:1" }, action: deny }]', /destination: only goes with channel/],
    ['path as command', 'command_rules: [{ name: a, protocol: ssh, match: { command: /bin/rm }, action: deny }]', /give the basename/],
    ['without_where on select', 'command_rules: [{ name: a, protocol: postgres, match: { statements: [SelectStmt], without_where: true }, action: deny }]', /applies to UpdateStmt and DeleteStmt only/],
    ['empty sql match', 'command_rules: [{ name: a, protocol: postgres, match: {}, action: deny }]', /needs at least one of/],
    ['duplicate in file', 'command_rules: [{ name: a, protocol: ssh, match: { regex: x }, action: deny }, { name: a, protocol: ssh, match: { regex: y }, action: deny }]', /command_rules\[1\] \(a\)\.name: is used twice/],
    ['bad default_action', 'default_action: nope', /default_action: must be one of/],
    ['reserved name', 'command_rules: [{ name: unparseable-sql, protocol: postgres, match: { copy_program: true }, action: deny }]', /is reserved/],
  ];
  it.each(cases)('%s', (_label, text, why) => {
    expect(() => parse(text)).toThrow(PolicyFileError);
    expect(() => parse(text)).toThrow(why);
  });

  it('accepts the documented shape exactly, with roles in the same file', () => {
    const f = parse(`
roles:
  - { name: dba, groups: [dba] }
default_action: allow
command_rules:
  - name: no-recursive-root-delete
    protocol: ssh
    targets: ["*"]
    match: { regex: 'rm\\s+-(rf|fr)\\s+/' }
    action: deny
    message: "Recursive deletes from / are blocked."
  - name: no-drop
    protocol: postgres
    targets: ["*"]
    match: { statements: [DropStmt, TruncateStmt] }
    action: deny
  - name: bulk-change-needs-approval
    protocol: postgres
    match: { statements: [UpdateStmt, DeleteStmt], without_where: true }
    action: review
`);
    expect(f.rules.map((r) => r.name)).toEqual(['no-recursive-root-delete', 'no-drop', 'bulk-change-needs-approval']);
    expect(f.rules[2]!.targets).toEqual(['*']);
  });

  it('a rule name defined in two files is an error naming both', () => {
    const a = parseRuleFile({ command_rules: [{ name: 'x', protocol: 'ssh', match: { regex: 'a' }, action: 'deny' }] }, 'a.yaml');
    const b = parseRuleFile({ command_rules: [{ name: 'x', protocol: 'ssh', match: { regex: 'b' }, action: 'deny' }] }, 'b.yaml');
    expect(() => combineRuleFiles([a, b])).toThrow(/b\.yaml: command_rules \(x\)\.name: is already defined in a\.yaml/);
  });

  it('the shipped examples are valid, and roles.ts still reads the folder', () => {
    const set = loadRules('policies/examples');
    expect(set.rules.length).toBeGreaterThan(5);
    expect(() => loadRoles('policies/examples')).not.toThrow();
  });
});

describe('engine: hot reload', () => {
  let dir: string;
  let engine: RunningPolicyEngine | undefined;
  afterEach(() => {
    engine?.close();
    engine = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const req = (command: string, target = 'web'): PolicyRequest => ({ protocol: 'ssh', kind: 'command', command, user: 'u', groups: [], roles: [], target, login: 'root' });
  const rule = (name: string, cmd: string, action = 'deny') => `command_rules:\n  - { name: ${name}, protocol: ssh, match: { command: ${cmd} }, action: ${action} }\n`;
  const until = async (ok: () => boolean, ms = 2000) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  it('applies a changed file without restart, refuses an invalid one and keeps the previous rules', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pol-'));
    writeFileSync(join(dir, 'a.yaml'), rule('no-shred', 'shred'));
    const errors: Error[] = [];
    let reloads = 0;
    engine = await createPolicyEngine({ dir, targets: { web: 'allow', locked: 'deny' }, onError: (e) => errors.push(e), onReload: () => reloads++ });
    expect(engine.evaluate(req('shred x')).action).toBe('deny');
    expect(engine.evaluate(req('ls', 'locked')).action).toBe('deny');
    expect(engine.evaluate(req('ls', 'unknown-target')).action).toBe('deny');

    writeFileSync(join(dir, 'b.yaml'), rule('no-wget', 'wget'));
    await until(() => engine!.evaluate(req('wget x')).action === 'deny');
    expect(reloads).toBeGreaterThan(0);

    writeFileSync(join(dir, 'a.yaml'), "command_rules:\n  - { name: bad, protocol: ssh, match: { regex: '(' }, action: deny }\n");
    await until(() => errors.length > 0);
    expect(errors[0]!.message).toMatch(/a\.yaml: command_rules\[0\] \(bad\)\.match\.regex: invalid regular expression/);
    expect(engine.evaluate(req('shred x')).action).toBe('deny'); // last good a.yaml stays
    await new Promise((r) => setTimeout(r, 1300));
    expect(errors).toHaveLength(1); // reported once per bad version, not every poll

    writeFileSync(join(dir, 'a.yaml'), rule('no-shred', 'shred', 'review'));
    await until(() => engine!.evaluate(req('shred x')).action === 'review');

    unlinkSync(join(dir, 'b.yaml'));
    await until(() => engine!.evaluate(req('wget x')).action === 'allow');
  });

  it('refuses to start on an invalid file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pol-'));
    writeFileSync(join(dir, 'a.yaml'), 'command_rules: 3\n');
    await expect(createPolicyEngine({ dir, targets: {} })).rejects.toThrow(/a\.yaml: command_rules: must be a list/);
  });

  it('picks changes up by polling when no watch event arrives', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pol-'));
    writeFileSync(join(dir, 'a.yaml'), '');
    engine = await createPolicyEngine({ dir, targets: { web: 'allow' }, pollMs: 200 });
    writeFileSync(join(dir, 'a.yaml'), rule('no-shred', 'shred'));
    expect(engine.reload()).toEqual([]);
    expect(engine.evaluate(req('shred x')).action).toBe('deny');
  });
});
