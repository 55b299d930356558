import { describe, expect, it } from 'vitest';
import { parseScp, plainScp } from '../../proxy/ssh/channels.js';
import { scpEnds, scpPathForms } from '../../proxy/ssh/scp-command.js';

// What the remote side of OpenSSH's scp runs: `scp [-v -r -p -d …] -t|-f [--] PATH`.
// parseScp finds the direction and path by the shell-word parse (the path the target's shell
// hands to scp); plainScp says whether the line is that and nothing else, so the `scp` channel
// rule alone may decide it (anything more is judged as a command); scpEnds finds every scp end
// of a line, under any wrapper.

describe('parseScp', () => {
  it.each([
    ['scp -t /tmp/x', 'upload', '/tmp/x'],
    ['scp -f /etc/hosts', 'download', '/etc/hosts'],
    ['scp -r -t /srv/dir', 'upload', '/srv/dir'],
    ['scp -pt /x', 'upload', '/x'],
    ['scp -rf /x', 'download', '/x'],
    ['scp -T -f /x', 'download', '/x'],
    ['scp -3 -t /x', 'upload', '/x'],
    ['scp -v -d -t -- "/tmp/a b"', 'upload', '/tmp/a b'],
    ['scp -t -- -weird', 'upload', '-weird'],
    ['  scp -t  /p  ', 'upload', '/p'],
    ['scp\t-t\t/x', 'upload', '/x'],
    // Quotes, escapes and comments are the shell's, not the path's.
    ['scp -t "/etc/passwd"', 'upload', '/etc/passwd'],
    ["scp -t '/etc/passwd'", 'upload', '/etc/passwd'],
    ["scp -t /etc/pass'wd'", 'upload', '/etc/passwd'],
    ['scp -t /e\\tc/passwd', 'upload', '/etc/passwd'],
    ['scp -t /etc/passwd # a comment', 'upload', '/etc/passwd'],
    ["scp -t $'/etc/\\x70asswd'", 'upload', '/etc/passwd'],
    ['scp -o Foo=bar -t /x', 'upload', '/x'],
  ] as const)('%j → %s %s', (command, direction, path) => {
    expect(parseScp(command)).toMatchObject({ direction, path, unknown: false });
  });

  it('takes -f over -t when both are given (scp checks -f first: it sends)', () => {
    expect(parseScp('scp -tf /x')).toMatchObject({ direction: 'download', path: '/x' });
  });

  it('keeps every operand: a source sends them all', () => {
    expect(parseScp('scp -f /ok /etc/shadow')).toMatchObject({ direction: 'download', paths: ['/ok', '/etc/shadow'] });
  });

  it.each(['scp -t $HOME/x', 'scp -t $(echo /etc)/passwd', 'scp -t `pwd`/x', 'scp -f /etc/sha*', 'scp -t ~bob/x'])('%j has a path the parser cannot read: unknown', (command) => {
    expect(scpEnds(command)).toEqual([expect.objectContaining({ unknown: true })]);
  });

  it.each([
    'scp /a /b', // the client side, not the remote end
    'scp /x -t', // no permutation in OpenSSH's getopt: a local copy to "-t"
    'scp -t', // no path
    'rscp -t /x',
    'SCP -t /x',
    'sudo scp -t /x',
    'env scp -t /x',
    'ls -t /x',
  ])('%j is not an scp sink or source as the first command', (command) => {
    expect(parseScp(command)).toBeUndefined();
  });

  it('reads the first command only: a second one is left to plainScp', () => {
    expect(parseScp('scp -t /x; rm -rf /')).toMatchObject({ direction: 'upload', path: '/x' });
    expect(plainScp('scp -t /x; rm -rf /')).toBeUndefined();
  });
});

describe('scpEnds', () => {
  it.each([
    ['env scp -t "/etc/passwd"', ['/etc/passwd']],
    ["bash -c 'scp -t \"/etc/passwd\"'", ['/etc/passwd']],
    ['true; /usr/bin/scp -t /etc/passwd', ['/etc/passwd']],
    ['scp -t /a && scp -f /b', ['/a', '/b']],
  ])('%j runs scp on %j', (command, paths) => {
    expect(scpEnds(command).flatMap((e) => e.paths)).toEqual(paths);
  });
});

describe('scpPathForms', () => {
  it('normalises and resolves relative and ~/ paths under the login home', () => {
    expect(scpPathForms('/srv/ok/../../etc/passwd', 'root')).toMatchObject({ canonical: '/etc/passwd' });
    expect(scpPathForms('../etc/passwd', 'root')).toMatchObject({ canonical: '/etc/passwd' });
    expect(scpPathForms('~/.ssh/authorized_keys', 'app')).toMatchObject({ canonical: '/home/app/.ssh/authorized_keys' });
    expect(scpPathForms('.ssh/authorized_keys', 'root').forms).toEqual(['.ssh/authorized_keys', '/root/.ssh/authorized_keys']);
  });
});

describe('plainScp', () => {
  it.each(['scp -t /tmp/x', 'scp -f /etc/hosts', 'scp -r -p -t -- /srv/dir'])('%j is the scp channel alone', (command) => {
    expect(plainScp(command)).toEqual(parseScp(command));
    expect(plainScp(command)).toBeDefined();
  });

  it.each([
    'scp -t /x; rm -rf /',
    'scp -t /x && id',
    'scp -t /x | tee /y',
    'scp -t $(id)',
    'scp -t `id`',
    'sudo scp -t /x',
    'scp /a /b',
  ])('%j is also judged as a command line', (command) => {
    expect(plainScp(command)).toBeUndefined();
  });
});
