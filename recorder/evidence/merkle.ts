import { createHash } from 'node:crypto';

/**
 * The Merkle tree of RFC 9162 (Certificate Transparency v2) section 2.1, over SHA-256:
 * leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right), and a tree
 * of n leaves splits at k, the largest power of two below n. Using the standard split and
 * prefixes means any RFC 9162 / RFC 6962 verifier can check our proofs, not just ours.
 * https://www.rfc-editor.org/rfc/rfc9162#section-2.1
 *
 * Pure functions over leaf hashes (32-byte Buffers); `MerkleTree` adds an append-only tree whose
 * root costs O(log n) per append (the compact range of perfect subtrees).
 */

export const HASH_SIZE = 32;

/** MTH({}) = SHA-256 of the empty string. */
export const EMPTY_ROOT = createHash('sha256').digest();

export function leafHash(entry: Uint8Array | string): Buffer {
  return createHash('sha256').update(Buffer.from([0])).update(entry).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.from([1])).update(left).update(right).digest();
}

/** Largest power of two strictly below n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function checkRange(leaves: readonly Uint8Array[], size: number): void {
  if (!Number.isInteger(size) || size < 0 || size > leaves.length) throw new RangeError(`tree size ${size} is outside 0..${leaves.length}`);
}

/** MTH(D[lo:hi]). */
function subtreeRoot(leaves: readonly Uint8Array[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return Buffer.from(leaves[lo]!);
  const k = splitPoint(n);
  return nodeHash(subtreeRoot(leaves, lo, lo + k), subtreeRoot(leaves, lo + k, hi));
}

/** The root of the first `size` leaves (all of them by default). */
export function rootOf(leaves: readonly Uint8Array[], size = leaves.length): Buffer {
  checkRange(leaves, size);
  return subtreeRoot(leaves, 0, size);
}

/** PATH(m, D[lo:hi]) of RFC 9162 2.1.3.1, leaf m relative to lo. */
function path(leaves: readonly Uint8Array[], m: number, lo: number, hi: number): Buffer[] {
  const n = hi - lo;
  if (n <= 1) return [];
  const k = splitPoint(n);
  if (m < k) return [...path(leaves, m, lo, lo + k), subtreeRoot(leaves, lo + k, hi)];
  return [...path(leaves, m - k, lo + k, hi), subtreeRoot(leaves, lo, lo + k)];
}

/** Inclusion proof of leaf `index` in the tree of the first `size` leaves. */
export function inclusionProof(leaves: readonly Uint8Array[], index: number, size = leaves.length): Buffer[] {
  checkRange(leaves, size);
  if (!Number.isInteger(index) || index < 0 || index >= size) throw new RangeError(`leaf ${index} is not in a tree of ${size}`);
  return path(leaves, index, 0, size);
}

/** SUBPROOF(m, D[lo:hi], b) of RFC 9162 2.1.4.1. */
function subproof(leaves: readonly Uint8Array[], m: number, lo: number, hi: number, whole: boolean): Buffer[] {
  const n = hi - lo;
  if (m === n) return whole ? [] : [subtreeRoot(leaves, lo, hi)];
  const k = splitPoint(n);
  if (m <= k) return [...subproof(leaves, m, lo, lo + k, whole), subtreeRoot(leaves, lo + k, hi)];
  return [...subproof(leaves, m - k, lo + k, hi, false), subtreeRoot(leaves, lo, lo + k)];
}

/** Consistency proof that the tree of `first` leaves is a prefix of the tree of `second`. */
export function consistencyProof(leaves: readonly Uint8Array[], first: number, second = leaves.length): Buffer[] {
  checkRange(leaves, second);
  if (!Number.isInteger(first) || first < 0 || first > second) throw new RangeError(`cannot prove ${first} against ${second}`);
  if (first === 0 || first === second) return [];
  return subproof(leaves, first, 0, second, true);
}

const isHash = (h: unknown): h is Uint8Array => h instanceof Uint8Array && h.length === HASH_SIZE;
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/** RFC 9162 2.1.3.2: does `proof` place `leaf` at `index` in the tree of `size` with `root`? */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!isHash(leaf) || !isHash(root) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && same(r, root);
}

/** RFC 9162 2.1.4.2: is the tree (`first`, `firstRoot`) a prefix of (`second`, `secondRoot`)? */
export function verifyConsistency(first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!isHash(firstRoot) || !isHash(secondRoot) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second) return false;
  if (first === second) return proof.length === 0 && same(firstRoot, secondRoot);
  // Every tree is an extension of the empty one, whose root is fixed.
  if (first === 0) return proof.length === 0 && same(firstRoot, EMPTY_ROOT);
  if (proof.length === 0) return false;
  // When `first` is a power of two its root is a node of the larger tree: the proof omits it.
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return same(fr, firstRoot) && same(sr, secondRoot) && sn === 0;
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

/**
 * An append-only tree. Keeps every leaf hash (32 bytes each: a million entries is 32 MB) for
 * proofs, and the roots of its perfect subtrees (one per set bit of the size) for the root.
 */
export class MerkleTree {
  private readonly leaves: Buffer[] = [];

  /** Roots of the perfect subtrees covering the leaves, largest first, with their heights. */
  private readonly range: { hash: Buffer; height: number }[] = [];

  get size(): number {
    return this.leaves.length;
  }

  /** Appends a leaf (already hashed with `leafHash`); returns its index. */
  append(leaf: Buffer): number {
    if (!isHash(leaf)) throw new TypeError('a leaf hash is 32 bytes');
    this.leaves.push(leaf);
    let node = { hash: leaf, height: 0 };
    while (this.range.length > 0 && this.range.at(-1)!.height === node.height) {
      const left = this.range.pop()!;
      node = { hash: nodeHash(left.hash, node.hash), height: node.height + 1 };
    }
    this.range.push(node);
    return this.leaves.length - 1;
  }

  leaf(index: number): Buffer | undefined {
    return this.leaves[index];
  }

  /** The current root in O(log n); an older size is recomputed from the leaves. */
  root(size = this.leaves.length): Buffer {
    if (size !== this.leaves.length) return rootOf(this.leaves, size);
    if (this.range.length === 0) return EMPTY_ROOT;
    let r = this.range.at(-1)!.hash;
    for (let i = this.range.length - 2; i >= 0; i--) r = nodeHash(this.range[i]!.hash, r);
    return r;
  }

  inclusionProof(index: number, size = this.leaves.length): Buffer[] {
    return inclusionProof(this.leaves, index, size);
  }

  consistencyProof(first: number, second = this.leaves.length): Buffer[] {
    return consistencyProof(this.leaves, first, second);
  }
}
