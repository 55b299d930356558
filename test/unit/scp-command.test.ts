import { describe, expect, it } from 'vitest';
import { parseScp, plainScp } from '../../proxy/ssh/channels.js';

// What the remote side of OpenSSH's scp runs: `scp [-v -r -p -d …] -t|-f [--] PATH`.
// parseScp finds the direction and path; plainScp says whether the line is that and nothing
// else, so the `scp` channel rule alone may decide it (anything more is judged as a command).

describe('parseScp', () => {
  it.each([
    ['scp -t /tmp/x', 'upload', '/tmp/x'],
    ['scp -f /etc/hosts', 'download', '/etc/hosts'],
    ['scp -r -t /srv/dir', 'upload', '/srv/dir'],
    ['scp -pt /x', 'upload', '/x'],
    ['scp -rf /x', 'download', '/x'],
    ['scp -T -f /x', 'download', '/x'],
    ['scp -3 -t /x', 'upload', '/x'],
    ['scp -v -d -t -- /tmp/a b', 'upload', '/tmp/a b'],
    ['scp -t -- -weird', 'upload', '-weird'],
    ['  scp -t  /p  ', 'upload', '/p'],
    ['scp\t-t\t/x', 'upload', '/x'],
  ] as const)('%j → %s %s', (command, direction, path) => {
    expect(parseScp(command)).toMatchObject({ direction, path });
  });

  it('takes -t over -f when both appear in one flag group (scp would sink)', () => {
    expect(parseScp('scp -tf /x')).toMatchObject({ direction: 'upload', path: '/x' });
  });

  it.each([
    'scp /a /b', // the client side, not the remote end
    'scp -t', // no path
    'rscp -t /x',
    'SCP -t /x',
    'sudo scp -t /x',
    'env scp -t /x',
    'scp -t /x\nrm y',
    'ls -t /x',
  ])('%j is not an scp sink or source', (command) => {
    expect(parseScp(command)).toBeUndefined();
  });

  it('keeps whatever follows the flags as the path, so a second command stays visible to plainScp', () => {
    expect(parseScp('scp -t /x; rm -rf /')).toMatchObject({ direction: 'upload', path: '/x; rm -rf /' });
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
