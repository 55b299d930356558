import { describe, expect, it } from 'vitest';
import { parseConfig, ConfigError } from '../../config/config.js';
import { captureConsole, createLog, prettyLine, stateLog } from '../../app/log.js';

const base = () => ({
  listen: { http: '127.0.0.1:8080', metrics: '127.0.0.1:9464' },
  identity: { dev: true },
});

function errorOf(doc: unknown): ConfigError {
  try {
    parseConfig(doc, '/etc/pam/pam.yaml');
  } catch (e) {
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('operations config', () => {
  it('reads listen.metrics, log, shutdown_grace and audit_export sinks', () => {
    const c = parseConfig({
      ...base(), log: { level: 'debug', format: 'pretty' }, shutdown_grace: '45s',
      audit_export: [
        { url: 'syslog://siem.example:514' },
        { url: 'syslog+tls://siem.example:6514', ca_file: 'ca.pem', name: 'splunk' },
        { url: 'https://hooks.example/pam', secret_file: 'hook.key', batch_max: 50 },
      ],
    }, '/etc/pam/pam.yaml');
    expect(c.listen.metrics).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(c.log).toEqual({ level: 'debug', format: 'pretty' });
    expect(c.shutdownGraceMs).toBe(45_000);
    expect(c.auditExport).toMatchObject([
      { name: 'syslog-1', kind: 'syslog', host: 'siem.example', port: 514, tls: false },
      { name: 'splunk', kind: 'syslog', port: 6514, tls: true, caFile: '/etc/pam/ca.pem' },
      { name: 'webhook-3', kind: 'webhook', tls: true, secretFile: '/etc/pam/hook.key', batchMax: 50 },
    ]);
    const d = parseConfig(base(), '/x.yaml');
    expect(d).toMatchObject({ log: { level: 'info' }, auditExport: [], shutdownGraceMs: 30_000, index: { enabled: true } });
    expect(parseConfig({ ...base(), index: { enabled: false } }, '/x.yaml').index).toEqual({ enabled: false });
    expect(errorOf({ ...base(), index: { enable: false } }).key).toBe('index.enable');
    expect(errorOf({ ...base(), index: 'off' }).key).toBe('index');
    expect(d.log?.format).toBeUndefined();
  });

  it.each([
    [{ ...base(), log: { level: 'loud' } }, 'log.level', /one of/],
    [{ ...base(), log: { format: 'xml' } }, 'log.format', /json or pretty/],
    [{ ...base(), shutdown_grace: 'soon' }, 'shutdown_grace', /not a duration/],
    [{ ...base(), audit_export: { url: 'syslog://a:1' } }, 'audit_export', /list/],
    [{ ...base(), audit_export: [{ url: 'kafka://a:1' }] }, 'audit_export[0].url', /not supported/],
    [{ ...base(), audit_export: [{ url: 'syslog://siem.example' }] }, 'audit_export[0].url', /host:port/],
    [{ ...base(), audit_export: [{ url: 'https://hooks.example/x' }] }, 'audit_export[0].secret_file', /required/],
    [{ ...base(), audit_export: [{ url: 'https://u:p@hooks.example/x', secret_file: 'k' }] }, 'audit_export[0].url', /credentials/],
    [{ ...base(), audit_export: [{ url: 'syslog://a:1', ca_file: 'x' }] }, 'audit_export[0].ca_file', /TLS/],
    [{ ...base(), audit_export: [{ url: 'syslog://a:1', name: 'x' }, { url: 'syslog://b:1', name: 'x' }] }, 'audit_export[1].name', /twice/],
    [{ ...base(), audit_export: [{ url: 'syslog://a:1', spool_max_bytes: 10 }] }, 'audit_export[0].spool_max_bytes', /at least/],
  ])('names the bad key (%#)', (doc, key, why) => {
    const e = errorOf(doc);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.key).toBe(key);
    expect(e.message).toMatch(why);
  });
});

describe('log', () => {
  const capture = (format?: 'json' | 'pretty', isTTY = false) => {
    const lines: string[] = [];
    const log = createLog({ level: 'info', format }, { isTTY, write: (s: string) => lines.push(s) });
    return { log, lines };
  };

  it('writes one JSON object per line with time, level and msg, and never a token or secret', () => {
    const { log, lines } = capture();
    const jwt = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkYW5hIn0.c2lnbmF0dXJlLWJ5dGVz';
    log.info({ session: 's1', token: jwt, password: 'hunter2', nested: { secret: 'x1' } }, 'opened');
    log.warn(`client sent ${jwt} as a user name`);
    log.error({ err: Object.assign(new Error('boom'), { code: 'EIO' }) }, 'failed');
    expect(lines).toHaveLength(3);
    const [a, b, c] = lines.map((l) => JSON.parse(l));
    expect(a).toMatchObject({ level: 'info', msg: 'opened', session: 's1', token: '[redacted]', password: '[redacted]', nested: { secret: '[redacted]' } });
    expect(typeof a.time).toBe('string');
    expect(b.msg).toBe('client sent [redacted-token] as a user name');
    expect(c.err).toEqual({ type: 'Error', message: 'boom', code: 'EIO' });
    expect(lines.join('')).not.toMatch(/hunter2|eyJhbGci|x1/);
  });

  it('is pretty on a terminal unless format says json', () => {
    expect(capture(undefined, true).log).toBeDefined();
    const tty = capture(undefined, true);
    tty.log.info({ target: 'web1' }, 'hello');
    expect(tty.lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  hello {2}target=web1\n$/);
    const forced = capture('json', true);
    forced.log.info('x');
    expect(JSON.parse(forced.lines[0]!).msg).toBe('x');
    expect(prettyLine('not json')).toBe('not json');
  });

  it('stateLog writes one line per state change, not one per retry', () => {
    const { log, lines } = capture();
    const s = stateLog(log, 'state store');
    for (let i = 0; i < 20; i++) s.down(new Error(i % 2 ? 'ECONNREFUSED' : 'ETIMEDOUT'));
    s.up();
    s.up();
    s.down(new Error('again'));
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['state store unavailable', 'state store available again', 'state store unavailable']);
  });

  it('turns console output of any module into log lines, errors without their stack', () => {
    const { log, lines } = capture();
    const restore = captureConsole(log);
    try {
      console.error('ssh broker: sealing failed', new Error('EIO: disk\nsecond line'));
      console.log('plain', { n: 1 });
    } finally {
      restore();
    }
    expect(lines).toHaveLength(2);
    const [e, l] = lines.map((x) => JSON.parse(x));
    expect(e).toMatchObject({ level: 'error', component: 'console', msg: 'ssh broker: sealing failed Error: EIO: disk\nsecond line' });
    expect(e.msg).not.toMatch(/ at /);
    expect(l).toMatchObject({ level: 'info', msg: 'plain { n: 1 }' });
    expect(lines.every((x) => x.endsWith('\n') && !x.slice(0, -1).includes('\n'))).toBe(true);
  });
});
