import { describe, expect, it } from 'vitest';
import { bindForms } from '../../proxy/ssh/forward-destination.js';

// `ssh -R` bind addresses as the target's sshd reads them (test/integration/ssh-forward-bind.test.ts
// checks the same at a real sshd with GatewayPorts clientspecified).
describe('bindForms', () => {
  it.each(['0', '0x0', '0.0.0.0', '0.0.0.0.', '00', '0.0', '[::ffff:0.0.0.0]'])('%j listens on every interface: judged as 0.0.0.0 and every wildcard spelling', async (addr) => {
    const b = await bindForms(addr);
    expect(b.canonical).toBe('0.0.0.0');
    expect(b.upstream).toBe('0.0.0.0');
    expect(b.forms).toEqual(expect.arrayContaining(['0.0.0.0', '::', '*', '']));
  });

  it.each(['', '*'])('%j is the sshd wildcard: asked upstream as "", judged as 0.0.0.0', async (addr) => {
    expect(await bindForms(addr)).toMatchObject({ canonical: '0.0.0.0', upstream: '' });
  });

  it('"::" and "[::]" are wildcards too', async () => {
    for (const a of ['::', '[::]']) expect((await bindForms(a)).forms).toEqual(expect.arrayContaining(['0.0.0.0', '::']));
  });

  it.each([['0x7f000001', '127.0.0.1'], ['2130706433', '127.0.0.1'], ['127.1', '127.0.0.1'], ['[::1]', '::1'], ['LOCALHOST.', 'localhost']])('%j is %s', async (addr, canonical) => {
    const b = await bindForms(addr);
    expect(b.canonical).toBe(canonical);
    expect(b.upstream).toBe(canonical);
    expect(b.forms).toContain(addr);
  });

  it('a name is also judged by what it resolves to', async () => {
    expect((await bindForms('localhost')).forms).toContain('127.0.0.1');
  });
});
