import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { evaluate } from '../../policies/evaluator.js';
import { parseRuleFile, combineRuleFiles } from '../../policies/rules.js';
import type { PolicyRequest } from '../../policies/policy.types.js';

/*
 * Allow-list mode (default deny) with the runners themselves allowed: the command a runner
 * runs must be allowed too (issue 11). Inline interpreter code is dynamic: a dynamic_command
 * deny rule stops it even where the interpreter is allowed.
 */
const RULES = combineRuleFiles([parseRuleFile(YAML.parse(`
command_rules:
  - name: allow-tools
    protocol: ssh
    match: { command: [ls, echo, script, runuser, ssh, git, tar, vim, perl, python3, awk, less] }
    action: allow
  - name: no-dynamic
    protocol: ssh
    match: { dynamic_command: true }
    action: deny
`), 'runners.yaml')]);

const ssh = (command: string): PolicyRequest => ({ protocol: 'ssh', kind: 'command', command, user: 'u', groups: [], roles: [], target: 'strict', login: 'root' });
const action = (line: string) => evaluate(RULES, ssh(line), 'deny').action;

describe('allow-list mode unwraps command runners', () => {
  it.each([
    ["script -qc 'rm -rf /tmp/x' /dev/null", "script -qc 'ls' /dev/null"],
    ['script --command="rm x"', 'script --command="echo hi"'],
    ['runuser -u app -- rm x', 'runuser -u app -- ls'],
    ["ssh -p 22 host 'rm x'", 'ssh -p 22 host ls'],
    ["git -c core.pager='rm x' log", "git -c core.pager='less' log"],
    ["git -c alias.x='!rm x' x", 'git -c alias.x=log x'],
    ["tar -cf /dev/null /etc --checkpoint=1 --checkpoint-action=exec='rm x'", "tar -cf /dev/null /etc --checkpoint=1 --checkpoint-action=exec='echo ok'"],
    ["tar --to-command='rm x' -xf a.tar", "tar --to-command='echo f' -xf a.tar"],
    ["vim -c '!rm x' f", "vim -c ':!ls' f"],
    ["vim +'silent !rm x' f", 'vim +10 f'],
  ])('%s is denied (its command is not allowed); %s runs', (bad, good) => {
    expect(action(bad)).toBe('deny');
    expect(action(good)).toBe('allow');
  });

  it.each([
    ["perl -e 'unlink q(x)'"],
    ["perl -ne 'print' f"],
    ["python3 -c 'import os; os.remove(\"x\")'"],
    ["awk 'BEGIN{system(\"rm x\")}'"],
    ["awk '{print | \"sh\"}' f"],
    ["vim -c 'call system(\"rm x\")' f"],
  ])('inline interpreter code is dynamic: %s is denied by dynamic_command', (line) => {
    expect(action(line)).toBe('deny');
    expect(evaluate(RULES, ssh(line), 'deny').rule).toBe('no-dynamic');
  });

  it('plain interpreter and awk use without inline code stay allowed', () => {
    expect(action('python3 script.py')).toBe('allow');
    expect(action("awk '{print $1}' f")).toBe('allow');
    expect(action('perl script.pl')).toBe('allow');
  });

  it.each([
    ['GIT_PAGER="rm x" git log', 'GIT_PAGER=less git log'],
    ["PAGER='rm x' git log", 'PAGER=less git log'],
    ['EDITOR="rm x" git commit', 'EDITOR=vim git commit'],
    ["LESSOPEN='|rm x %s' less f", "LESSOPEN='|ls %s' less f"],
    ["GIT_SSH_COMMAND='rm x' git fetch", "GIT_SSH_COMMAND='ssh -p 22' git fetch"],
    ["less +'!rm x' f", 'less +G f'],
    ["less --cmd='!rm x' f", 'less +/pattern f'],
  ])('a pager/editor from the environment or less +! runs a command: %s is denied; %s runs', (bad, good) => {
    expect(action(bad)).toBe('deny');
    expect(action(good)).toBe('allow');
  });

  it.each([
    ['python3 script.py', 'a script file: its code is not on the line'],
  ])('KNOWN GAP: %s is allowed (%s)', (line) => {
    expect(action(line)).toBe('allow');
  });
});
