import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { splitCommands, splitShell } from '../../policies/shell-words.js';
import { evaluate } from '../../policies/evaluator.js';
import { parseRuleFile, combineRuleFiles } from '../../policies/rules.js';
import type { Action, PolicyRequest } from '../../policies/policy.types.js';
import YAML from 'yaml';

const RULES = combineRuleFiles([parseRuleFile(YAML.parse(`
command_rules:
  - name: no-recursive-root-delete
    protocol: ssh
    targets: ["*"]
    match: { regex: 'rm\\s+-(rf|fr)\\s+/' }
    action: deny
    message: "Recursive deletes from / are blocked."
  - name: no-shred
    protocol: ssh
    match: { command: shred }
    action: deny
  - name: no-sudo
    protocol: ssh
    targets: [locked-sudo]
    match: { command: sudo }
    action: deny
  - name: reboot-review
    protocol: ssh
    match: { command: reboot }
    action: review
  - name: curl-alert
    protocol: ssh
    match: { command: curl, args_regex: 'pastebin' }
    action: alert
`), 'shell.yaml')]);

const ssh = (command: string, target = 'web-1'): PolicyRequest =>
  ({ protocol: 'ssh', kind: 'command', command, user: 'u', groups: [], roles: [], target, login: 'root' });

describe('shell splitter: every spelling of rm -rf / yields the simple command rm -rf /', () => {
  const spellings = [
    'rm -rf /', 'r""m -rf /', '\\rm -rf /', "'rm' -rf /", '"rm" "-rf" "/"', "r'm' -r'f' /", 'true; rm -rf /',
    'true && rm -rf /', 'false || rm -rf /', 'ls | rm -rf /', 'sleep 1 & rm -rf /', 'ls\nrm -rf /',
    'echo $(rm -rf /)', 'echo `rm -rf /`', 'cat <(rm -rf /)', '( rm -rf / )', '{ rm -rf /; }',
    "bash -c 'rm -rf /'", "sh -c \"rm -rf /\"", "zsh -c 'bash -c \"rm -rf /\"'", "bash -lc 'rm -rf /'",
    'sudo rm -rf /', 'sudo -u root -E rm -rf /', 'sudo -- rm -rf /', 'env rm -rf /', 'env -i A=1 B=2 rm -rf /',
    'nohup rm -rf /', 'time rm -rf /', 'exec rm -rf /', 'command rm -rf /', 'nice -n 19 rm -rf /', 'timeout 5 rm -rf /',
    'timeout -s KILL 5s rm -rf /', 'X=1 Y=2 rm -rf /', "sudo sh -c 'env FOO=1 nohup rm -rf /'", "$'\\x72\\x6d' -rf /",
    "$'\\162\\155' -rf /", '{rm,-rf,/}', 'a=rm; $a -rf /', 'a="rm -rf"; $a /', 'eval "rm -rf /"', "eval 'r''m' -rf /",
    'env -S "rm -rf /"', 'echo ${x:-$(rm -rf /)}', 'echo $(( $(rm -rf /) ))', 'echo "$(rm -rf /)"', 'bash <<< "rm -rf /"',
    'if true; then rm -rf /; fi', 'for f in 1; do rm -rf /; done', 'while true; do rm -rf /; done', 'f() { rm -rf /; }',
    "alias ll='rm -rf /'", "trap 'rm -rf /' EXIT", "watch -n 5 'rm -rf /'", "su -c 'rm -rf /' root", 'rm -rf / 2>/dev/null',
    '>/dev/null rm -rf /', 'echo x |& rm -rf /', 'ls;rm -rf /;ls', 'r\\\nm -rf /', '! rm -rf /',
  ];
  it.each(spellings)('%j', (line) => {
    expect(splitShell(line).map((c) => c.join(' '))).toContain('rm -rf /');
  });

  it('keeps argv[0] as typed and strips only the wrappers', () => {
    expect(splitCommands('/bin/rm -rf /')[0]).toMatchObject({ argv: ['/bin/rm', '-rf', '/'], wrappers: [] });
    expect(splitCommands("sudo -u x bash -c 'nohup rm a'")[0]).toMatchObject({ argv: ['rm', 'a'], wrappers: ['sudo', 'bash', 'nohup'] });
  });

  it('opens xargs and find -exec', () => {
    expect(splitShell('find / -name x -exec rm -rf {} \\;').map((c) => c.join(' '))).toContain('rm -rf {}');
    expect(splitShell('ls | xargs -0 -n1 rm -rf').map((c) => c.join(' '))).toContain('rm -rf');
  });

  it('marks command names it cannot know as dynamic', () => {
    expect(splitCommands('$CMD -rf /')[0]!.dynamic).toBe(true);
    expect(splitCommands('$(echo rm) -rf /').at(-1)!.dynamic).toBe(true);
    expect(splitCommands('/bin/r? -rf /')[0]!.dynamic).toBe(true);
    expect(splitCommands('rm -rf /')[0]!.dynamic).toBe(false);
  });

  it('yields nothing to run for blank lines, comments and bare assignments', () => {
    expect(splitShell('')).toEqual([]);
    expect(splitShell('   # rm -rf /')).toEqual([]);
    expect(splitShell('A=1 B=2')).toEqual([]);
  });

  it('never throws or hangs on random input', () => {
    const alphabet = fc.constantFrom(...'ab $\'"`\\(){};&|<>#\n=*?[]!-cxn0{,}'.split(''));
    fc.assert(fc.property(fc.string({ unit: alphabet, maxLength: 200 }), (s) => {
      const out = splitCommands(s);
      expect(Array.isArray(out)).toBe(true);
    }), { numRuns: 3000 });
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => { splitCommands(s); }), { numRuns: 2000 });
  });

  it('survives pathological nesting and expansion', () => {
    for (const s of ['('.repeat(50_000), '$('.repeat(20_000), '`'.repeat(10_001), "bash -c '".repeat(2000), '{a,b}'.repeat(200), 'a=$a$a$a$a; '.repeat(40) + '$a', '"'.repeat(9999), '$((' .repeat(5000)]) {
      // A hang would time the test out; no wall-clock assertion here.
      expect(() => splitCommands(s)).not.toThrow();
    }
  });
});

/** The bypass corpus: [line, expected action, deciding rule or undefined, note]. */
const CORPUS: Array<[string, Action, string | undefined, string?]> = [
  ['ls -la', 'allow', undefined],
  ['rm -rf /', 'deny', 'no-recursive-root-delete'],
  ['r""m -rf /', 'deny', 'no-recursive-root-delete', 'empty quotes inside the name'],
  ['\\rm -rf /', 'deny', 'no-recursive-root-delete', 'backslash bypasses aliases'],
  ["'rm' -rf /", 'deny', 'no-recursive-root-delete'],
  ['/bin/rm -rf /', 'deny', 'no-recursive-root-delete'],
  ['true; rm -rf /', 'deny', 'no-recursive-root-delete'],
  ['echo ok && rm -fr /etc', 'deny', 'no-recursive-root-delete'],
  ["bash -c 'rm -rf /'", 'deny', 'no-recursive-root-delete'],
  ["sudo -u root sh -c \"cd /tmp && rm -rf /\"", 'deny', 'no-recursive-root-delete'],
  ['env -i PATH=/bin rm -rf /', 'deny', 'no-recursive-root-delete'],
  ['echo $(rm -rf /)', 'deny', 'no-recursive-root-delete'],
  ['{rm,-rf,/}', 'deny', 'no-recursive-root-delete', 'brace expansion'],
  ["$'\\x72m' -rf /", 'deny', 'no-recursive-root-delete', 'ANSI-C quoting'],
  ['a=rm; $a -rf /', 'deny', 'no-recursive-root-delete', 'variable set on the same line'],
  ['shred -u /etc/passwd', 'deny', 'no-shred'],
  ['/usr/bin/shred x', 'deny', 'no-shred', 'basename for command:'],
  ['find /var -exec shred {} +', 'deny', 'no-shred'],
  ['ls | xargs shred', 'deny', 'no-shred'],
  ['reboot', 'review', 'reboot-review'],
  ['reboot; shred x', 'deny', 'no-shred', 'deny beats review across commands'],
  ['curl https://pastebin.com/x', 'alert', 'curl-alert'],
  ['curl https://example.com', 'allow', undefined],
  ['ls # rm -rf /', 'deny', 'no-recursive-root-delete', 'comment: raw-line regex is conservative (false positive)'],
  // Known gaps: asserted so the behaviour is documented (see policies/README.md).
  ['rm -r -f /', 'allow', undefined, 'KNOWN GAP: the regex rule only knows -rf/-fr; use command: rm with args_regex'],
  ['$(echo rm) -rf /', 'allow', undefined, 'KNOWN GAP: command name from a substitution (dynamic_command rule flags it)'],
  ['/bin/r? -rf /', 'allow', undefined, 'KNOWN GAP: glob in the command name (dynamic_command rule flags it)'],
  ['echo "rm -rf /" > x.sh; bash x.sh', 'deny', 'no-recursive-root-delete', 'caught only because the raw line holds the text'],
  ['printf "\\x72\\x6d -rf /" | bash', 'allow', undefined, 'KNOWN GAP: commands generated at run time and piped to a shell'],
  ['python3 -c "import shutil; shutil.rmtree(\'/\')"', 'allow', undefined, 'KNOWN GAP: interpreters'],
  ['X=s; ${X}hred f', 'deny', 'no-shred', 'known variable inside a word'],
  ['coproc shred x', 'deny', 'no-shred'],
  ['cat <<EOF\nshred x\nEOF', 'deny', 'no-shred', 'heredoc bodies are read as commands (conservative)'],
  ['echo c2hyZWQgeA== | base64 -d | sh', 'allow', undefined, 'KNOWN GAP: encoded command piped to a shell'],
  ['source evil.sh', 'allow', undefined, 'KNOWN GAP: scripts'],
];

describe('bypass corpus (deny-list target)', () => {
  it.each(CORPUS)('%j → %s', (line, action, rule) => {
    const v = evaluate(RULES, ssh(line), 'allow');
    expect({ action: v.action, rule: v.rule }).toEqual({ action, rule });
  });

  it('returns the split commands and the rule message', () => {
    const v = evaluate(RULES, ssh("true; sudo bash -c 'rm -rf /'"), 'allow');
    expect(v.commands).toEqual([['true'], ['rm', '-rf', '/']]);
    expect(v.message).toBe('Recursive deletes from / are blocked.');
  });

  it('command: sudo matches sudo as a wrapper, only on the targets the rule names', () => {
    expect(evaluate(RULES, ssh('sudo ls', 'locked-sudo'), 'allow')).toMatchObject({ action: 'deny', rule: 'no-sudo' });
    expect(evaluate(RULES, ssh('sudo ls', 'web-1'), 'allow').action).toBe('allow');
  });
});

describe('allow-list mode (default_action deny)', () => {
  const allowList = combineRuleFiles([parseRuleFile(YAML.parse(`
command_rules:
  - { name: reads, protocol: ssh, match: { command: [ls, cat, grep] }, action: allow }
  - { name: status, protocol: ssh, match: { command: systemctl, args_regex: '^status\\b' }, action: allow }
`), 'allow.yaml')]);
  const cases: Array<[string, Action]> = [
    ['ls -la', 'allow'],
    ['ls | grep x', 'allow'],
    ['systemctl status nginx', 'allow'],
    ['systemctl stop nginx', 'deny'],
    ['ls; rm x', 'deny'],
    ['ls $(rm x)', 'deny'],
    ['sudo ls', 'deny'],
    ["bash -c 'ls'", 'deny'],
    ['$CMD', 'deny'],
    ['', 'allow'],
    ['A=1', 'allow'],
  ];
  it.each(cases)('%j → %s', (line, action) => {
    expect(evaluate(allowList, ssh(line), 'deny').action).toBe(action);
  });
  it('a session-state bypass across lines is still denied in allow-list mode', () => {
    expect(evaluate(allowList, ssh('a=rm'), 'deny').action).toBe('allow');
    expect(evaluate(allowList, ssh('$a -rf /'), 'deny').action).toBe('deny');
  });
  it('names the unmatched command when the default decides', () => {
    const v = evaluate(allowList, ssh('ls; vim /etc/hosts'), 'deny');
    expect(v.rule).toBeUndefined();
    expect(v.message).toContain('vim /etc/hosts');
  });
});

describe('ssh channels', () => {
  const rules = combineRuleFiles([parseRuleFile(YAML.parse(`
default_action: { "prod-*": deny }
command_rules:
  - { name: no-agent, protocol: ssh, match: { channel: agent-forward }, action: deny }
  - { name: meta, protocol: ssh, match: { channel: port-forward, destination: "169.254.169.254:*" }, action: deny }
  - { name: db-forward, protocol: ssh, targets: ["prod-*"], match: { channel: port-forward, destination: "db.internal:5432" }, action: allow }
`), 'ch.yaml')]);
  const ch = (channel: 'sftp' | 'port-forward' | 'agent-forward', destination?: string, target = 'web-1'): PolicyRequest =>
    ({ protocol: 'ssh', kind: 'channel', channel, destination, user: 'u', groups: [], roles: [], target, login: 'root' });
  it('matches channel and destination glob; forwarding without an allow rule is refused', () => {
    expect(evaluate(rules, ch('agent-forward'), 'allow')).toMatchObject({ action: 'deny', rule: 'no-agent' });
    expect(evaluate(rules, ch('port-forward', '169.254.169.254:80'), 'allow')).toMatchObject({ action: 'deny', rule: 'meta' });
    expect(evaluate(rules, ch('port-forward', '10.0.0.1:80'), 'allow').action).toBe('deny');
    expect(evaluate(rules, ch('sftp', undefined, 'web-1'), 'allow').action).toBe('allow');
    expect(evaluate(rules, ch('sftp', undefined, 'prod-1'), 'allow').action).toBe('deny');
    expect(evaluate(rules, ch('port-forward', 'db.internal:5432', 'prod-1'), 'allow')).toMatchObject({ action: 'allow', rule: 'db-forward' });
    expect(evaluate(rules, ch('port-forward', 'db.internal:22', 'prod-1'), 'allow').action).toBe('deny');
  });
});

describe('match: { unechoed: true } (input typed with echo off)', () => {
  const rules = combineRuleFiles([parseRuleFile(YAML.parse(`
command_rules:
  - { name: prompts-ok, protocol: ssh, targets: [strict], match: { unechoed: true }, action: allow }
  - { name: no-rm, protocol: ssh, match: { command: rm }, action: deny }
`), 'u.yaml')]);
  const req = (command: string, unechoed: boolean, target = 'strict'): PolicyRequest => ({ ...ssh(command, target), ...(unechoed ? { unechoed: true } : {}) } as PolicyRequest);

  it('allows every command of an unechoed line on an allow-list target; an explicit deny still wins; echoed lines are untouched', () => {
    expect(evaluate(rules, req('hunter2 | x; y', true), 'deny')).toMatchObject({ action: 'allow', rule: 'prompts-ok' });
    const echoed = evaluate(rules, req('hunter2', false), 'deny');
    expect([echoed.action, echoed.rule]).toEqual(['deny', undefined]);
    expect(evaluate(rules, req('rm -rf /x', true), 'deny')).toMatchObject({ action: 'deny', rule: 'no-rm' });
    // Another target: the rule does not apply, the default decides.
    const other = evaluate(rules, req('hunter2', true, 'other'), 'deny');
    expect([other.action, other.rule]).toEqual(['deny', undefined]);
  });

  it('is refused with any other value or next to another matcher', () => {
    expect(() => parseRuleFile(YAML.parse('command_rules: [{ name: a, protocol: ssh, match: { unechoed: false }, action: allow }]'), 'f.yaml')).toThrow(/unechoed: must be true/);
    expect(() => parseRuleFile(YAML.parse('command_rules: [{ name: a, protocol: ssh, match: { unechoed: true, command: rm }, action: allow }]'), 'f.yaml')).toThrow(/needs exactly one of/);
  });
});
