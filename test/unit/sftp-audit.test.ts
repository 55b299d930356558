import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { describeSftpOp, SftpAudit, SftpPacketSplitter, type SftpOp } from '../../proxy/ssh/sftp-audit.js';

// SFTP v3 packets (draft-ietf-secsh-filexfer-02): uint32 length | byte type | body.
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const str = (s: string | Buffer) => { const b = Buffer.isBuffer(s) ? s : Buffer.from(s); return Buffer.concat([u32(b.length), b]); };
const packet = (type: number, ...fields: Buffer[]) => { const body = Buffer.concat([Buffer.from([type]), ...fields]); return Buffer.concat([u32(body.length), body]); };
const withId = (type: number, id: number, ...fields: Buffer[]) => packet(type, u32(id), ...fields);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FXP = { INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, SETSTAT: 9, OPENDIR: 11, REMOVE: 13, MKDIR: 14, RMDIR: 15, RENAME: 18, SYMLINK: 20, STATUS: 101, HANDLE: 102, DATA: 103 };
const FXF_READ = 1;
const FXF_WRITE = 2;
const FXF_CREAT = 8;

function collect(): { packets: Array<{ head: Buffer; length: number }>; splitter: SftpPacketSplitter } {
  const packets: Array<{ head: Buffer; length: number }> = [];
  return { packets, splitter: new SftpPacketSplitter((p) => void packets.push({ head: Buffer.from(p.whole()), length: p.length })) };
}

/** Feeds `stream` cut at the given offsets. */
function feedCut(s: SftpPacketSplitter, stream: Buffer, cuts: number[]): void {
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    s.feed(stream.subarray(prev, c));
    prev = c;
  }
  s.feed(stream.subarray(prev));
}

describe('SftpPacketSplitter', () => {
  const stream = Buffer.concat([
    packet(FXP.INIT, u32(3)),
    withId(FXP.OPEN, 1, str('/etc/hosts'), u32(FXF_READ), u32(0)),
    withId(FXP.WRITE, 2, str('h1'), u64(0), str(Buffer.alloc(300, 7))),
    withId(FXP.REMOVE, 3, str('/tmp/x')),
  ]);
  const expected = [
    { length: 5, type: FXP.INIT },
    { length: 1 + 4 + 14 + 8, type: FXP.OPEN },
    { length: 1 + 4 + 6 + 8 + 304, type: FXP.WRITE },
    { length: 1 + 4 + 10, type: FXP.REMOVE },
  ];

  it('yields each packet whole, with its length, when fed at once', () => {
    const { packets, splitter } = collect();
    splitter.feed(stream);
    expect(packets.map((p) => ({ length: p.length, type: p.head[0] }))).toEqual(expected);
    expect(splitter.broken).toBe(false);
  });

  it('yields the same packets for a split at every offset', () => {
    const { packets: whole, splitter: w } = collect();
    w.feed(stream);
    for (let cut = 0; cut <= stream.length; cut++) {
      const { packets, splitter } = collect();
      feedCut(splitter, stream, [cut]);
      expect(packets, `cut at ${cut}`).toEqual(whole);
    }
  });

  it('yields the same packets fed one byte at a time (length prefix split in four)', () => {
    const { packets: whole, splitter: w } = collect();
    w.feed(stream);
    const { packets, splitter } = collect();
    for (let i = 0; i < stream.length; i++) splitter.feed(stream.subarray(i, i + 1));
    expect(packets).toEqual(whole);
  });

  it('yields the same packets under any chunking (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 255 }), fc.uint8Array({ maxLength: 600 })), { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (specs, rawCuts) => {
        const s = Buffer.concat(specs.map(([t, body]) => packet(t, Buffer.from(body))));
        const { packets: whole, splitter: w } = collect();
        w.feed(s);
        expect(whole.map((p) => p.length)).toEqual(specs.map(([, b]) => b.length + 1));
        expect(whole.map((p) => p.head[0])).toEqual(specs.map(([t]) => t));
        const { packets, splitter } = collect();
        feedCut(splitter, s, rawCuts.map((c) => c % (s.length + 1)));
        expect(packets).toEqual(whole);
      },
    ));
  });

  it('keeps a large packet whole (its data is hashed per file), cut at any offset', () => {
    const big = withId(FXP.WRITE, 9, str('h'), u64(0), str(Buffer.alloc(100_000, 0xab)));
    const next = withId(FXP.REMOVE, 10, str('/after'));
    const { packets, splitter } = collect();
    feedCut(splitter, Buffer.concat([big, next]), [3, 5000, 16_383, 16_390, 70_000]);
    expect(packets).toHaveLength(2);
    expect(packets[0]!.length).toBe(big.length - 4);
    expect(packets[0]!.head.length).toBe(big.length - 4);
    expect(packets[0]!.head.equals(big.subarray(4))).toBe(true);
    expect(packets[1]!.head.equals(next.subarray(4))).toBe(true);
  });

  it('stops at a zero length and stays stopped', () => {
    const { packets, splitter } = collect();
    splitter.feed(Buffer.concat([packet(FXP.INIT, u32(3)), u32(0), withId(FXP.REMOVE, 1, str('/x'))]));
    expect(packets).toHaveLength(1);
    expect(splitter.broken).toBe(true);
    splitter.feed(withId(FXP.REMOVE, 2, str('/y')));
    expect(packets).toHaveLength(1);
  });

  it('stops at a length above 4 MiB (before buffering any of it), and accepts exactly 4 MiB', () => {
    const over = collect();
    over.splitter.feed(Buffer.concat([u32(4 * 1024 * 1024 + 1), Buffer.alloc(64)]));
    expect(over.splitter.broken).toBe(true);
    expect(over.packets).toHaveLength(0);

    const max = collect();
    max.splitter.feed(u32(4 * 1024 * 1024));
    for (let i = 0; i < 64; i++) max.splitter.feed(Buffer.alloc(64 * 1024, i));
    expect(max.splitter.broken).toBe(false);
    expect(max.packets.map((p) => p.length)).toEqual([4 * 1024 * 1024]);
  });

  it('waits for the rest of a truncated packet without yielding it', () => {
    const p = withId(FXP.REMOVE, 1, str('/x'));
    const { packets, splitter } = collect();
    splitter.feed(p.subarray(0, p.length - 1));
    expect(packets).toHaveLength(0);
    splitter.feed(p.subarray(p.length - 1));
    expect(packets).toHaveLength(1);
  });
});

describe('SftpAudit', () => {
  function audit() {
    const ops: SftpOp[] = [];
    const broken: string[] = [];
    const a = new SftpAudit((op) => ops.push(op), (why) => broken.push(why));
    return { a, ops, broken };
  }

  it('reports an upload at CLOSE with the bytes written, even with requests split across chunks', () => {
    const { a, ops } = audit();
    const client = Buffer.concat([
      packet(FXP.INIT, u32(3)),
      withId(FXP.OPEN, 1, str('/srv/up.bin'), u32(FXF_WRITE | FXF_CREAT), u32(0)),
    ]);
    a.client(client);
    a.server(Buffer.concat([packet(FXP.VERSION, u32(3)), withId(FXP.HANDLE, 1, str('H1'))]));
    const writes = Buffer.concat([
      withId(FXP.WRITE, 2, str('H1'), u64(0), str(Buffer.alloc(1000, 1))),
      withId(FXP.WRITE, 3, str('H1'), u64(1000), str(Buffer.alloc(24, 2))),
      withId(FXP.CLOSE, 4, str('H1')),
    ]);
    for (let i = 0; i < writes.length; i += 7) a.client(writes.subarray(i, i + 7));
    expect(ops).toEqual([{ op: 'upload', path: '/srv/up.bin', bytes: 1024, digest: { size: 1024, sha256: sha(Buffer.concat([Buffer.alloc(1000, 1), Buffer.alloc(24, 2)])) } }]);
  });

  it('reports a download with the bytes the server returned', () => {
    const { a, ops } = audit();
    a.client(withId(FXP.OPEN, 1, str('/etc/hosts'), u32(FXF_READ), u32(0)));
    a.server(withId(FXP.HANDLE, 1, str('hh')));
    a.client(withId(FXP.READ, 2, str('hh'), u64(0), u32(32768)));
    a.server(withId(FXP.DATA, 2, str(Buffer.alloc(500, 9))));
    a.client(withId(FXP.READ, 3, str('hh'), u64(500), u32(32768)));
    a.server(withId(FXP.DATA, 3, str(Buffer.alloc(20, 9))));
    a.client(withId(FXP.CLOSE, 4, str('hh')));
    expect(ops).toEqual([{ op: 'download', path: '/etc/hosts', bytes: 520, digest: { size: 520, sha256: sha(Buffer.alloc(520, 9)) } }]);
  });

  it('hashes DATA replies where they lie in the chunks, under any chunking (property)', () => {
    const content = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
    const replies: Buffer[] = [];
    const reads: Buffer[] = [];
    for (let off = 0, id = 10; off < content.length; off += 32768, id++) {
      reads.push(withId(FXP.READ, id, str('hh'), u64(off), u32(32768)));
      replies.push(withId(FXP.DATA, id, str(content.subarray(off, off + 32768))));
    }
    const server = Buffer.concat(replies);
    fc.assert(fc.property(fc.array(fc.nat(server.length), { maxLength: 12 }), (cuts) => {
      const { a, ops } = audit();
      a.client(withId(FXP.OPEN, 1, str('/srv/big.bin'), u32(FXF_READ), u32(0)));
      a.server(withId(FXP.HANDLE, 1, str('hh')));
      a.client(Buffer.concat(reads));
      let prev = 0;
      for (const c of [...cuts].sort((x, y) => x - y)) {
        a.server(server.subarray(prev, c));
        prev = c;
      }
      a.server(server.subarray(prev));
      a.client(withId(FXP.CLOSE, 99, str('hh')));
      expect(ops).toEqual([{ op: 'download', path: '/srv/big.bin', bytes: content.length, digest: { size: content.length, sha256: sha(content) } }]);
    }), { numRuns: 60 });
  });

  it('reads a WRITE whose handle is longer than the draft allows, split across chunks', () => {
    const { a, ops, broken } = audit();
    const handle = Buffer.alloc(2000, 0x68);
    a.client(withId(FXP.OPEN, 1, str('/srv/long.bin'), u32(FXF_WRITE | FXF_CREAT), u32(0)));
    a.server(withId(FXP.HANDLE, 1, str(handle)));
    const w = Buffer.concat([withId(FXP.WRITE, 2, str(handle), u64(0), str(Buffer.alloc(3000, 5))), withId(FXP.CLOSE, 3, str(handle))]);
    for (let i = 0; i < w.length; i += 700) a.client(w.subarray(i, i + 700));
    expect(broken).toEqual([]);
    expect(ops).toEqual([{ op: 'upload', path: '/srv/long.bin', bytes: 3000, digest: { size: 3000, sha256: sha(Buffer.alloc(3000, 5)) } }]);
  });

  it('forgets an OPEN the server refused (STATUS), so a later handle of that id is no file', () => {
    const { a, ops } = audit();
    a.client(withId(FXP.OPEN, 1, str('/root/secret'), u32(FXF_READ), u32(0)));
    a.server(withId(FXP.STATUS, 1, u32(3), str('Permission denied'), str('')));
    a.server(withId(FXP.HANDLE, 1, str('zz')));
    a.client(withId(FXP.CLOSE, 2, str('zz')));
    a.end();
    expect(ops).toEqual([]);
  });

  it('reports path operations as they are asked', () => {
    const { a, ops } = audit();
    a.client(Buffer.concat([
      withId(FXP.REMOVE, 1, str('/a')), withId(FXP.MKDIR, 2, str('/d'), u32(0)), withId(FXP.RMDIR, 3, str('/d')),
      withId(FXP.SETSTAT, 4, str('/a'), u32(0)), withId(FXP.OPENDIR, 5, str('/')),
      withId(FXP.RENAME, 6, str('/a'), str('/b')), withId(FXP.SYMLINK, 7, str('/l'), str('/t')),
    ]));
    expect(ops).toEqual([
      { op: 'remove', path: '/a' }, { op: 'mkdir', path: '/d' }, { op: 'rmdir', path: '/d' }, { op: 'setstat', path: '/a' },
      { op: 'list', path: '/' }, { op: 'rename', path: '/a', to: '/b' }, { op: 'symlink', path: '/l', to: '/t' },
    ]);
    expect(ops.map(describeSftpOp)[5]).toBe('sftp rename /a -> /b');
  });

  it('reports files still open at the end of the channel', () => {
    const { a, ops } = audit();
    a.client(withId(FXP.OPEN, 1, str('/tmp/partial'), u32(FXF_WRITE), u32(0)));
    a.server(withId(FXP.HANDLE, 1, str('p')));
    a.client(withId(FXP.WRITE, 2, str('p'), u64(0), str('abc')));
    expect(ops).toEqual([]);
    a.end();
    expect(ops).toEqual([{ op: 'upload', path: '/tmp/partial', bytes: 3, digest: { size: 3, sha256: sha(Buffer.from('abc')) } }]);
  });

  it('reports a malformed packet once and records nothing after it', () => {
    const { a, ops, broken } = audit();
    // REMOVE whose path string claims 100 bytes inside a 9-byte body.
    a.client(packet(FXP.REMOVE, u32(1), u32(100), Buffer.from('/x')));
    a.client(withId(FXP.REMOVE, 2, str('/after')));
    a.client(u32(0));
    expect(broken).toEqual(['sftp stream not understood; file operations no longer recorded']);
    expect(ops).toEqual([]);
  });

  it('reports a bad length from the server side too', () => {
    const { a, broken } = audit();
    a.server(u32(0xffffffff));
    expect(broken).toHaveLength(1);
  });

  it('never throws on random bytes from either side (property)', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 200 })), { maxLength: 20 }), (chunks) => {
      const { a } = audit();
      for (const [fromClient, bytes] of chunks) (fromClient ? a.client(Buffer.from(bytes)) : a.server(Buffer.from(bytes)));
      a.end();
    }));
  });
});
