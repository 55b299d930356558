import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { evaluate } from '../../policies/evaluator.js';
import { parseRuleFile, combineRuleFiles } from '../../policies/rules.js';
import { splitCommands } from '../../policies/shell-words.js';
import type { PolicyRequest } from '../../policies/policy.types.js';

/*
 * Shell state that runs a command later (policies/shell-hooks.ts): the line that stores it is
 * judged as if the command ran now. Each line below passed before: the stored command then ran
 * at the next prompt, key press or Tab without ever being typed at an Enter.
 */
const RULES = combineRuleFiles([parseRuleFile(YAML.parse(`
command_rules:
  - name: keep-canaries
    protocol: ssh
    match: { command: rm, args_regex: canary }
    action: deny
  - name: no-dynamic
    protocol: ssh
    match: { dynamic_command: true }
    action: deny
`), 'hooks.yaml')]);
const ssh = (command: string): PolicyRequest => ({ protocol: 'ssh', kind: 'command', command, user: 'u', groups: [], roles: [], target: 't', login: 'root' });
const verdict = (line: string) => evaluate(RULES, ssh(line), 'allow');

describe('commands stored for later are judged when stored', () => {
  it.each([
    `PROMPT_COMMAND='rm canary'`,
    `PROMPT_COMMAND+=('rm canary')`,
    `PROMPT_COMMAND=('echo hi' 'rm canary')`,
    `export PROMPT_COMMAND='rm canary'`,
    `declare -x PROMPT_COMMAND='rm canary'`,
    `readonly PROMPT_COMMAND='rm canary'`,
    `PS1='$(rm canary)$ '`,
    'PS0="`rm canary`"',
    `export PS4='+$(rm canary) '`,
    `bind -x '"\\C-t": rm canary'`,
    `bind -x '"\\C-t": "rm canary"'`,
    `bind '"\\C-t": "rm canary\\n"'`,
    `bind '"\\C-t": "rm canary\\C-m"'`,
    `complete -C 'rm canary' ls`,
    `complete -o default -C 'rm canary' ls`,
    `compgen -C 'rm canary' x`,
    `history -s rm canary`,
    // Read off tmux's or screen's command prompt (Ctrl-B :, Ctrl-A :).
    `:run-shell "rm canary"`,
    `: new-window 'rm canary'`,
    `:split-window -d -c /tmp 'rm canary'`,
    `:neww rm canary`,
    `:exec rm canary`,
    `:bind-key x run-shell 'rm canary'`,
    `:send-keys 'rm canary' Enter`,
    `:set -g default-command 'rm canary'`,
    `:set-hook -g after-new-window 'run-shell "rm canary"'`,
    `:stuff "rm canary^M"`,
  ])('%s is denied by the rule on what it stores or runs', (line) => {
    expect(verdict(line)).toMatchObject({ action: 'deny', rule: 'keep-canaries' });
  });

  it.each([
    ['!!', '!!'],
    ['sudo !!', '!!'],
    ['!-2', '!-2'],
    ['!rm', '!rm'],
    ['^xrm^rm', '^xrm^rm'],
    ['fc -s xrm=rm', 'fc'],
    ['fc', 'fc'],
    [`printf -v PROMPT_COMMAND 'r%s canary' m`, 'printf'],
    [`read PROMPT_COMMAND <<< 'rm canary'`, 'read'],
    [`mapfile -t PROMPT_COMMAND < f`, 'mapfile'],
    ['bind -f ~/.inputrc', 'bind'],
    [':source-file ~/x.conf', ':source-file'],
    [`bind '"\\C-t": accept-line'`, 'bind'],
    ['bind \\C-t:edit-and-execute-command', 'bind'],
  ])('%s runs what the line does not show: a dynamic command (%s)', (line, head) => {
    const dynamic = splitCommands(line).filter((c) => c.dynamic).map((c) => c.argv[0]);
    expect(dynamic).toContain(head);
    expect(verdict(line)).toMatchObject({ action: 'deny', rule: 'no-dynamic' });
  });

  it.each([
    `PS1='\\u@\\h:\\w\\$ '`,
    `export PS1='[\\t] \\$ '`,
    `PROMPT_COMMAND='history -a'`,
    `bind '"\\C-t": "ls -l"'`,
    `bind '"\\e[A": history-search-backward'`,
    'fc -l',
    'history -c',
    `echo "done!"`,
    'echo hi!',
    `echo 'a!b'`,
    'echo $!',
    'ls [!a]*',
    'a^b^c',
    'test 1 != 2',
    `printf -v x '%s' y`,
    `:new-window -n logs 'tail -f /var/log/syslog'`,
    `: nothing here`,
  ])('%s stays allowed', (line) => {
    expect(verdict(line).action).toBe('allow');
  });
});
