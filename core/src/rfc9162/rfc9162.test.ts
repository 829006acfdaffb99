import { describe, expect, it } from 'vitest';
import { sha256 } from '../hash.ts';
import { fromHex, toHex, utf8 } from '../bytes.ts';
import {
  HASH_SIZE,
  LEAF_PREFIX,
  MerkleError,
  MerkleTree,
  NODE_PREFIX,
  consistencyProof,
  hashChildren,
  hashEmpty,
  hashLeaf,
  inclusionProof,
  rootFromInclusionProof,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from './index.ts';

/** The straight recursive definitions of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1, as an independent reference. */
const k = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);
function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha256(new Uint8Array(0));
  if (d.length === 1) return d[0]!;
  return hashChildren(mth(d.slice(0, k(d.length))), mth(d.slice(k(d.length))));
}
function path(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s ? [...path(m, d.slice(0, s)), mth(d.slice(s))] : [...path(m - s, d.slice(s)), mth(d.slice(0, s))];
}
function subproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [mth(d)];
  const s = k(d.length);
  return m <= s
    ? [...subproof(m, d.slice(0, s), b), mth(d.slice(s))]
    : [...subproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}

const leafOf = (i: number): Uint8Array => hashLeaf(new Uint8Array([i & 0xff, (i >> 8) & 0xff, 0x5e]));
const leavesOf = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => leafOf(i));
const flipBit = (proof: Uint8Array[], node: number, bit: number): Uint8Array[] =>
  proof.map((h, i) => {
    if (i !== node) return h;
    const c = h.slice();
    c[bit >> 3]! ^= 1 << (bit & 7);
    return c;
  });

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (e) {
    if (e instanceof MerkleError) return e.code;
    throw e;
  }
  return undefined;
}

describe('hashing (RFC 9162 §2.1.1)', () => {
  it('uses 0x00 for leaves and 0x01 for interior nodes', () => {
    expect(LEAF_PREFIX).toBe(0x00);
    expect(NODE_PREFIX).toBe(0x01);
    const a = utf8('a');
    expect(hashLeaf(a)).toEqual(sha256(new Uint8Array([0x00, 0x61])));
    const l = new Uint8Array(32).fill(1);
    const r = new Uint8Array(32).fill(2);
    expect(hashChildren(l, r)).toEqual(sha256(new Uint8Array([0x01, ...l, ...r])));
  });

  it('hashes the empty tree as SHA-256 of the empty string', () => {
    expect(toHex(rootFromLeafHashes([]))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hashEmpty()).toEqual(rootFromLeafHashes([]));
    expect(new MerkleTree().root()).toEqual(rootFromLeafHashes([]));
  });

  // The RFC 6962 reference leaves used by certificate-transparency and transparency-dev/merkle, and the roots
  // of their first 1..8 leaves (the same roots appear in ../shared/vectors/rfc9162/testdata).
  it('gives the known roots of the RFC 6962 reference tree', () => {
    const data = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
    const roots = [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ];
    const leaves = data.map((h) => hashLeaf(fromHex(h)));
    const tree = new MerkleTree();
    for (let n = 1; n <= 8; n++) {
      tree.append(leaves[n - 1]!);
      expect(toHex(rootFromLeafHashes(leaves.slice(0, n)))).toBe(roots[n - 1]);
      expect(toHex(tree.root())).toBe(roots[n - 1]);
    }
  });

  it('agrees with the recursive definition for every size 0..130', () => {
    const leaves = leavesOf(130);
    for (let n = 0; n <= 130; n++) expect(rootFromLeafHashes(leaves.slice(0, n))).toEqual(mth(leaves.slice(0, n)));
  });
});

describe('MerkleTree', () => {
  it('agrees with rootFromLeafHashes at every size 0..600 and for earlier sizes', () => {
    const leaves = leavesOf(600);
    const tree = new MerkleTree();
    expect(tree.size).toBe(0);
    for (let n = 0; n < 600; n++) {
      expect(tree.root()).toEqual(rootFromLeafHashes(leaves.slice(0, n)));
      expect(tree.append(leaves[n]!)).toBe(n);
      expect(tree.size).toBe(n + 1);
    }
    for (const n of [0, 1, 2, 3, 255, 256, 257, 511, 512, 599, 600]) {
      expect(tree.root(n)).toEqual(rootFromLeafHashes(leaves.slice(0, n)));
    }
    expect(MerkleTree.from(leaves).root()).toEqual(rootFromLeafHashes(leaves));
    expect(tree.leafHash(17)).toEqual(leaves[17]);
  });

  it('gives the same proofs as the array builders and the recursive definitions (sizes 1..40)', () => {
    const leaves = leavesOf(40);
    const tree = MerkleTree.from(leaves);
    for (let n = 1; n <= 40; n++) {
      const d = leaves.slice(0, n);
      for (let m = 0; m < n; m++) {
        const expected = path(m, d);
        expect(inclusionProof(d, m)).toEqual(expected);
        expect(tree.inclusionProof(m, n)).toEqual(expected);
      }
      for (let m = 1; m <= n; m++) {
        const expected = subproof(m, d, true);
        expect(consistencyProof(d, m)).toEqual(expected);
        expect(tree.consistencyProof(m, n)).toEqual(expected);
      }
    }
  });

  it('copies what it is given and what it returns', () => {
    const leaf = leafOf(1);
    const tree = new MerkleTree();
    tree.append(leaf);
    tree.append(leafOf(2));
    const before = tree.root();
    leaf.fill(0);
    tree.root().fill(0);
    tree.inclusionProof(0)[0]!.fill(0);
    expect(tree.root()).toEqual(before);
    expect(tree.inclusionProof(0)[0]).toEqual(leafOf(2));
  });

  describe('when asked for a leaf or size it does not have', () => {
    const tree = MerkleTree.from(leavesOf(5));
    it('rejects with MERKLE_RANGE_ERROR', () => {
      expect(codeOf(() => tree.inclusionProof(5))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.inclusionProof(-1))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.inclusionProof(1.5))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.inclusionProof(3, 3))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.inclusionProof(0, 6))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.root(6))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.consistencyProof(0))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.consistencyProof(4, 3))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.consistencyProof(1, 6))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => tree.leafHash(5))).toBe('MERKLE_RANGE_ERROR');
      expect(codeOf(() => new MerkleTree().inclusionProof(0))).toBe('MERKLE_RANGE_ERROR');
    });
  });

  it('throws TypeError for a leaf hash that is not 32 bytes', () => {
    expect(() => new MerkleTree().append(new Uint8Array(31))).toThrow(TypeError);
    expect(() => new MerkleTree().append('x' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('array builders', () => {
  it('reject an index or size outside the tree with MERKLE_RANGE_ERROR', () => {
    const leaves = leavesOf(4);
    expect(codeOf(() => inclusionProof(leaves, 4))).toBe('MERKLE_RANGE_ERROR');
    expect(codeOf(() => inclusionProof([], 0))).toBe('MERKLE_RANGE_ERROR');
    expect(codeOf(() => consistencyProof(leaves, 0))).toBe('MERKLE_RANGE_ERROR');
    expect(codeOf(() => consistencyProof(leaves, 5))).toBe('MERKLE_RANGE_ERROR');
    expect(consistencyProof(leaves, 4)).toEqual([]);
  });

  it('throw TypeError for leaf hashes that are not 32-byte Uint8Arrays', () => {
    expect(() => rootFromLeafHashes([new Uint8Array(32), new Uint8Array(33)])).toThrow(TypeError);
    expect(() => inclusionProof('no' as unknown as Uint8Array[], 0)).toThrow(TypeError);
  });
});

describe('inclusion proofs (RFC 9162 §2.1.3)', () => {
  const leaves = leavesOf(257);
  const tree = MerkleTree.from(leaves);

  it('verify for every leaf of every tree size 1..257', () => {
    let checked = 0;
    for (let n = 1; n <= 257; n++) {
      const root = tree.root(n);
      for (let m = 0; m < n; m++) {
        const proof = tree.inclusionProof(m, n);
        verifyInclusion(m, n, leaves[m]!, proof, root);
        checked++;
      }
    }
    expect(checked).toBe((257 * 258) / 2);
  });

  // Every node of every proof for sizes 1..64; for sizes 65..257 (to keep the suite fast: each failed check
  // costs a full path of hashes) the first and last leaf and every 16th one.
  it('fail with a bit flipped in any proof node', () => {
    let flipped = 0;
    for (let n = 1; n <= 257; n++) {
      const root = tree.root(n);
      for (let m = 0; m < n; m++) {
        if (n > 64 && m !== 0 && m !== n - 1 && m % 16 !== n % 16) continue;
        const proof = tree.inclusionProof(m, n);
        for (let node = 0; node < proof.length; node++) {
          const bad = flipBit(proof, node, (m * 31 + node * 7 + n) % 256);
          expect(rootFromInclusionProof(m, n, leaves[m]!, bad)).not.toEqual(root);
          flipped++;
        }
      }
    }
    expect(flipped).toBeGreaterThan(20_000);
    const proof = tree.inclusionProof(100, 257);
    expect(codeOf(() => verifyInclusion(100, 257, leaves[100]!, flipBit(proof, 3, 9), tree.root(257)))).toBe(
      'INCLUSION_PROOF_ERROR',
    );
  });

  describe('when the proof, index or size is wrong', () => {
    const n = 13;
    const m = 6;
    const root = tree.root(n);
    const proof = tree.inclusionProof(m, n);
    const cases: [string, () => void][] = [
      ['the leaf is another one', () => verifyInclusion(m, n, leaves[m + 1]!, proof, root)],
      ['the index is another one', () => verifyInclusion(m + 1, n, leaves[m]!, proof, root)],
      ['the tree size is doubled', () => verifyInclusion(m, 2 * n, leaves[m]!, proof, root)],
      ['the tree size is halved', () => verifyInclusion(m, n >> 1, leaves[m]!, proof, root)],
      ['the root is of another size', () => verifyInclusion(m, n, leaves[m]!, proof, tree.root(n + 1))],
      ['a node is missing', () => verifyInclusion(m, n, leaves[m]!, proof.slice(1), root)],
      ['a node is added', () => verifyInclusion(m, n, leaves[m]!, [...proof, root], root)],
      ['nodes are swapped', () => verifyInclusion(m, n, leaves[m]!, [proof[1]!, proof[0]!, ...proof.slice(2)], root)],
      ['a node is 31 bytes', () => verifyInclusion(m, n, leaves[m]!, [proof[0]!.subarray(1), ...proof.slice(1)], root)],
      ['the leaf hash is 33 bytes', () => verifyInclusion(m, n, new Uint8Array(33), proof, root)],
      ['the index equals the size', () => verifyInclusion(n, n, leaves[m]!, proof, root)],
      ['the tree is empty', () => verifyInclusion(0, 0, leaves[0]!, [], hashEmpty())],
      ['the index is negative', () => verifyInclusion(-1, n, leaves[m]!, proof, root)],
      ['the index is not an integer', () => verifyInclusion(5.5, n, leaves[m]!, proof, root)],
      ['the size is beyond 2^53', () => verifyInclusion(m, 2 ** 64, leaves[m]!, proof, root)],
    ];
    for (const [name, run] of cases) {
      it(`rejects with INCLUSION_PROOF_ERROR when ${name}`, () => expect(codeOf(run)).toBe('INCLUSION_PROOF_ERROR'));
    }
    it('throws TypeError for arguments of the wrong type', () => {
      expect(() => verifyInclusion(m, n, leaves[m]!, null as unknown as Uint8Array[], root)).toThrow(TypeError);
      expect(() => verifyInclusion(m, n, leaves[m]!, ['00'] as unknown as Uint8Array[], root)).toThrow(TypeError);
      expect(() => verifyInclusion(m, n, leaves[m]!, proof, 'root' as unknown as Uint8Array)).toThrow(TypeError);
    });
  });

  it('handles sizes past 2^32 without 32-bit shifts', () => {
    // A tree of 2^33 + 1 leaves: leaf 2^33 is the right child of the root, so its path is one node (the hash of
    // the first 2^33 leaves), whatever that hash is.
    const left = new Uint8Array(32).fill(7);
    const leaf = leafOf(0);
    expect(rootFromInclusionProof(2 ** 33, 2 ** 33 + 1, leaf, [left])).toEqual(hashChildren(left, leaf));
    expect(codeOf(() => rootFromInclusionProof(2 ** 33, 2 ** 33 + 1, leaf, []))).toBe('INCLUSION_PROOF_ERROR');
  });
});

describe('consistency proofs (RFC 9162 §2.1.4)', () => {
  const leaves = leavesOf(65);
  const tree = MerkleTree.from(leaves);
  const roots = Array.from({ length: 66 }, (_, n) => tree.root(n));

  it('verify for every pair of sizes 1 <= m <= n <= 64, and fail when tampered', () => {
    let checked = 0;
    for (let n = 1; n <= 64; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(leaves.slice(0, n), m);
        verifyConsistency(m, n, roots[m]!, roots[n]!, proof);
        checked++;
        for (let node = 0; node < proof.length; node++) {
          const bad = flipBit(proof, node, (m * 13 + node * 5 + n) % 256);
          expect(codeOf(() => verifyConsistency(m, n, roots[m]!, roots[n]!, bad))).toBe('CONSISTENCY_PROOF_ERROR');
        }
        const tampered: Uint8Array[][] = [[...proof, roots[n]!]];
        if (proof.length > 0) tampered.push(proof.slice(0, -1), proof.slice(1), [roots[m]!, ...proof]);
        for (const bad of tampered) {
          expect(codeOf(() => verifyConsistency(m, n, roots[m]!, roots[n]!, bad))).toBe('CONSISTENCY_PROOF_ERROR');
        }
        if (m < n) {
          const other = hashLeaf(utf8('other'));
          expect(codeOf(() => verifyConsistency(m, n, other, roots[n]!, proof))).toBe('CONSISTENCY_PROOF_ERROR');
          expect(codeOf(() => verifyConsistency(m, n, roots[m]!, other, proof))).toBe('CONSISTENCY_PROOF_ERROR');
          expect(codeOf(() => verifyConsistency(m, n, roots[n]!, roots[m]!, proof))).toBe('CONSISTENCY_PROOF_ERROR');
          expect(codeOf(() => verifyConsistency(n, m, roots[n]!, roots[m]!, proof))).toBe('CONSISTENCY_PROOF_ERROR');
          if (m + 1 < n) {
            expect(codeOf(() => verifyConsistency(m + 1, n, roots[m]!, roots[n]!, proof))).toBe('CONSISTENCY_PROOF_ERROR');
          }
          // A size that changes the shape of the proof must fail (one with the same shape cannot be told apart
          // by hashes alone: RFC 9162 signs the size with the root for that reason).
          if (tree.consistencyProof(m, n + 1).length !== proof.length) {
            expect(codeOf(() => verifyConsistency(m, n + 1, roots[m]!, roots[n]!, proof))).toBe('CONSISTENCY_PROOF_ERROR');
          }
        }
      }
    }
    expect(checked).toBe((64 * 65) / 2);
  });

  describe('when the sizes are degenerate', () => {
    const r = roots[5]!;
    it('accepts equal sizes with an empty proof and equal roots', () => verifyConsistency(5, 5, r, r, []));
    const cases: [string, () => void][] = [
      ['the sizes are equal but the proof is not empty', () => verifyConsistency(5, 5, r, r, [r])],
      ['the sizes are equal but the roots differ', () => verifyConsistency(5, 5, r, roots[4]!, [])],
      ['size1 is zero', () => verifyConsistency(0, 5, hashEmpty(), r, [])],
      ['both sizes are zero', () => verifyConsistency(0, 0, hashEmpty(), hashEmpty(), [])],
      ['size1 is greater than size2', () => verifyConsistency(6, 5, roots[6]!, r, [])],
      ['the proof is empty', () => verifyConsistency(3, 5, roots[3]!, r, [])],
      ['a size is not a safe integer', () => verifyConsistency(3, 2 ** 64, roots[3]!, r, [r])],
      ['a root is 31 bytes', () => verifyConsistency(3, 5, roots[3]!.subarray(1), r, consistencyProof(leaves.slice(0, 5), 3))],
    ];
    for (const [name, run] of cases) {
      it(`rejects with CONSISTENCY_PROOF_ERROR when ${name}`, () => expect(codeOf(run)).toBe('CONSISTENCY_PROOF_ERROR'));
    }
  });
});

describe('the constants', () => {
  it('are the SHA-256 sizes', () => expect(HASH_SIZE).toBe(32));
});
