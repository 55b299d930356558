import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT, MerkleTree, consistencyProof, inclusionProof, leafHash, nodeHash, rootOf, verifyConsistency, verifyInclusion,
} from '../../recorder/evidence/merkle.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => Buffer.from(s, 'hex');

// RFC 6962 / RFC 9162 reference data (transparency-dev/merkle testonly vectors): leaves, the
// root for each size 1..8, and published proofs. These fail if our split or prefixes drift.
const CT_ENTRIES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const CT_LEAVES = CT_ENTRIES.map((e) => leafHash(e));
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_INCLUSION = [
  { index: 0, size: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { index: 5, size: 8, proof: ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
];
const CT_CONSISTENCY = [
  { first: 2, second: 8, proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { first: 6, second: 8, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
];

/** The RFC's definitions written as literally as possible, to check the real code against. */
function refRoot(d: Buffer[]): Buffer {
  if (d.length === 0) return createHash('sha256').digest();
  if (d.length === 1) return d[0]!;
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return nodeHash(refRoot(d.slice(0, k)), refRoot(d.slice(k)));
}

const N = 70;
const LEAVES = Array.from({ length: N }, (_, i) => leafHash(`entry ${i}`));
const ROOTS = Array.from({ length: N + 1 }, (_, n) => refRoot(LEAVES.slice(0, n)));

describe('merkle tree (RFC 9162 2.1)', () => {
  it('matches the published roots for sizes 0..8 and the leaf/node prefixes', () => {
    expect(hex(EMPTY_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(rootOf([]))).toBe(hex(EMPTY_ROOT));
    for (let n = 1; n <= 8; n++) expect(hex(rootOf(CT_LEAVES, n)), `size ${n}`).toBe(CT_ROOTS[n - 1]);
    const t = new MerkleTree();
    CT_LEAVES.forEach((l, i) => {
      t.append(l);
      expect(hex(t.root())).toBe(CT_ROOTS[i]);
    });
  });

  it('produces and accepts the published inclusion and consistency proofs', () => {
    for (const v of CT_INCLUSION) {
      expect(inclusionProof(CT_LEAVES, v.index, v.size).map(hex)).toEqual(v.proof);
      expect(verifyInclusion(CT_LEAVES[v.index]!, v.index, v.size, v.proof.map(unhex), unhex(CT_ROOTS[v.size - 1]!))).toBe(true);
    }
    for (const v of CT_CONSISTENCY) {
      expect(consistencyProof(CT_LEAVES, v.first, v.second).map(hex)).toEqual(v.proof);
      expect(verifyConsistency(v.first, v.second, unhex(CT_ROOTS[v.first - 1]!), unhex(CT_ROOTS[v.second - 1]!), v.proof.map(unhex))).toBe(true);
    }
  });

  it('the incremental root equals the reference root at every size, and old sizes are recomputed', () => {
    const t = new MerkleTree();
    for (let n = 1; n <= N; n++) {
      t.append(LEAVES[n - 1]!);
      expect(hex(t.root())).toBe(hex(ROOTS[n]!));
    }
    for (let n = 0; n <= N; n += 7) expect(hex(t.root(n))).toBe(hex(ROOTS[n]!));
  });

  it('every inclusion proof verifies for every size up to 70, and only for its own leaf, index and size', () => {
    for (let n = 1; n <= N; n++) {
      for (let i = 0; i < n; i++) {
        const p = inclusionProof(LEAVES, i, n);
        expect(verifyInclusion(LEAVES[i]!, i, n, p, ROOTS[n]!)).toBe(true);
        if (n > 1) {
          expect(verifyInclusion(LEAVES[(i + 1) % n]!, i, n, p, ROOTS[n]!)).toBe(false);
          expect(verifyInclusion(LEAVES[i]!, (i + 1) % n, n, p, ROOTS[n]!)).toBe(false);
          expect(verifyInclusion(LEAVES[i]!, i, n, p, ROOTS[n - 1]!)).toBe(false);
          expect(verifyInclusion(LEAVES[i]!, i, n, p.slice(0, -1), ROOTS[n]!)).toBe(false);
          expect(verifyInclusion(LEAVES[i]!, i, n, [...p, LEAVES[0]!], ROOTS[n]!)).toBe(false);
        }
        // The size is bound by the signed checkpoint, not the path: against the root of n+1 it fails.
        if (n < N) expect(verifyInclusion(LEAVES[i]!, i, n + 1, p, ROOTS[n + 1]!)).toBe(false);
      }
    }
  });

  it('every consistency proof verifies for every pair up to 70, and fails against any other root', () => {
    for (let n = 0; n <= N; n++) {
      for (let m = 0; m <= n; m++) {
        const p = consistencyProof(LEAVES, m, n);
        expect(verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, p), `${m}->${n}`).toBe(true);
        if (m > 0 && m < n) {
          expect(verifyConsistency(m, n, ROOTS[m - 1]!, ROOTS[n]!, p)).toBe(false);
          expect(verifyConsistency(m, n, ROOTS[m]!, ROOTS[n - 1]!, p)).toBe(false);
          expect(verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, p.slice(0, -1))).toBe(false);
          expect(verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, [...p, LEAVES[0]!])).toBe(false);
        }
      }
    }
    expect(verifyConsistency(4, 4, ROOTS[4]!, ROOTS[5]!, [])).toBe(false);
    expect(verifyConsistency(0, 8, ROOTS[1]!, ROOTS[8]!, [])).toBe(false);
    expect(verifyConsistency(6, 3, ROOTS[6]!, ROOTS[3]!, [])).toBe(false);
  });

  it('a history with any entry changed, dropped, inserted or swapped is not consistent with the original (property)', () => {
    fc.assert(fc.property(
      fc.integer({ min: 2, max: N }), fc.nat(), fc.constantFrom('change', 'drop', 'insert', 'swap'),
      (n, at, how) => {
        const i = at % (n - 1);
        const forged = LEAVES.slice(0, n);
        if (how === 'change') forged[i] = leafHash('forged');
        if (how === 'drop') forged.splice(i, 1);
        if (how === 'insert') forged.splice(i, 0, leafHash('forged'));
        if (how === 'swap') [forged[i], forged[i + 1]] = [forged[i + 1]!, forged[i]!];
        // The forger proves consistency from the honest checkpoint at n to their own tree.
        const size = Math.max(n, forged.length);
        const padded = [...forged, ...LEAVES.slice(forged.length, size)];
        const p = consistencyProof(padded, n, size);
        expect(verifyConsistency(n, size, ROOTS[n]!, rootOf(padded), p)).toBe(false);
      },
    ), { numRuns: 300 });
  });

  it('a flipped byte anywhere in an inclusion proof is refused (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: N }), fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), (n, at, pos, bit) => {
      const i = at % n;
      const p = inclusionProof(LEAVES, i, n).map((b) => Buffer.from(b));
      const target = p[pos % p.length]!;
      target[pos % 32]! ^= bit;
      expect(verifyInclusion(LEAVES[i]!, i, n, p, ROOTS[n]!)).toBe(false);
    }), { numRuns: 300 });
  });

  it('malformed input is refused, never thrown on by the verifiers', () => {
    const p = inclusionProof(CT_LEAVES, 5, 8);
    const root = unhex(CT_ROOTS[7]!);
    expect(verifyInclusion(Buffer.alloc(31), 5, 8, p, root)).toBe(false);
    expect(verifyInclusion(CT_LEAVES[5]!, 5, 8, [Buffer.alloc(31), ...p.slice(1)], root)).toBe(false);
    expect(verifyInclusion(CT_LEAVES[5]!, -1, 8, p, root)).toBe(false);
    expect(verifyInclusion(CT_LEAVES[5]!, 8, 8, p, root)).toBe(false);
    expect(verifyInclusion(CT_LEAVES[5]!, 5, 8, 'x' as unknown as Buffer[], root)).toBe(false);
    expect(() => inclusionProof(CT_LEAVES, 8, 8)).toThrow(RangeError);
    expect(() => consistencyProof(CT_LEAVES, 5, 3)).toThrow(RangeError);
    expect(() => new MerkleTree().append(Buffer.alloc(31))).toThrow(TypeError);
  });
});
