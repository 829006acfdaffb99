/**
 * An append-only RFC 9162 Merkle tree over leaf hashes, for the log side (the ingest service's batches).
 *
 * It keeps every complete (perfect, aligned) subtree hash: level j holds the hashes of leaves
 * [i·2^j, (i+1)·2^j). `append` is amortised O(1) hashing (one leaf completes on average one interior node), so
 * building a tree of n leaves is O(n) with about 2n stored hashes. Any subtree that RFC 9162 §2.1.1 uses for a
 * tree of size <= `size` is a fold of at most log2(n) cached nodes, so `root` is O(log n) and the proofs are
 * O(log² n). It can answer for any earlier size as well, because an append-only tree never changes the complete
 * subtrees it already has.
 *
 * Measured: 276,000 leaves/s for append + root of 100k leaves (noble SHA-256, 2-CPU Xeon under load average ~5,
 * docs/BENCHMARKS.md "Raw limits", 2026-11-23).
 */
import { assertIndex, buildConsistencyPath, buildInclusionPath } from './proof-build.ts';
import { HASH_SIZE, hashChildren, hashEmpty, splitPoint } from './hash.ts';

/** log2(n) when n is a power of two, else -1. */
function exactLog2(n: number): number {
  let j = 0;
  let m = n;
  while (m > 1 && m % 2 === 0) {
    m /= 2;
    j++;
  }
  return m === 1 ? j : -1;
}

export class MerkleTree {
  /** levels[j][i] = MTH of the leaves [i·2^j, (i+1)·2^j); levels[0] are the leaf hashes. */
  readonly #levels: Uint8Array[][] = [[]];

  /** A tree holding `leafHashes` in order (each a 32-byte Uint8Array, else TypeError). O(n). */
  static from(leafHashes: Iterable<Uint8Array>): MerkleTree {
    const tree = new MerkleTree();
    for (const h of leafHashes) tree.append(h);
    return tree;
  }

  /**
   * Appends a leaf hash (usually `hashLeaf(entry)`, RFC 9162 §2.1.1) and returns its leaf index, i.e. the size
   * before the append. The hash is copied. Throws TypeError unless it is a 32-byte Uint8Array.
   */
  append(leafHash: Uint8Array): number {
    if (!(leafHash instanceof Uint8Array) || leafHash.length !== HASH_SIZE) {
      throw new TypeError(`leafHash must be a ${HASH_SIZE}-byte Uint8Array`);
    }
    const leaves = this.#levels[0]!;
    const index = leaves.length;
    leaves.push(leafHash.slice());
    // Each trailing 1-bit of the new size completes one more perfect subtree, one level up.
    let node = leaves[index]!;
    let i = index;
    for (let j = 0; i % 2 === 1; j++) {
      const level = this.#levels[j]!;
      node = hashChildren(level[i - 1]!, node);
      const up = (this.#levels[j + 1] ??= []);
      up.push(node);
      i = (i - 1) / 2;
    }
    return index;
  }

  /** Number of leaves appended so far. */
  get size(): number {
    return this.#levels[0]!.length;
  }

  /** A copy of the leaf hash at `leafIndex`. MerkleError MERKLE_RANGE_ERROR unless 0 <= leafIndex < size. */
  leafHash(leafIndex: number): Uint8Array {
    assertIndex(leafIndex, 0, this.size - 1, 'leafIndex', { leafIndex, treeSize: this.size });
    return this.#levels[0]![leafIndex]!.slice();
  }

  /**
   * MTH of the first `treeSize` leaves (default: all of them), RFC 9162 §2.1.1; SHA-256("") for size 0.
   * MerkleError MERKLE_RANGE_ERROR unless 0 <= treeSize <= size. O(log n).
   */
  root(treeSize: number = this.size): Uint8Array {
    assertIndex(treeSize, 0, this.size, 'treeSize', { treeSize, size: this.size });
    return this.#rangeHash(0, treeSize).slice();
  }

  /**
   * The inclusion proof of `leafIndex` in the tree of the first `treeSize` leaves (default: all), RFC 9162
   * §2.1.3.1, leaf up. MerkleError MERKLE_RANGE_ERROR unless 0 <= leafIndex < treeSize <= size. O(log² n).
   */
  inclusionProof(leafIndex: number, treeSize: number = this.size): Uint8Array[] {
    assertIndex(treeSize, 1, this.size, 'treeSize', { leafIndex, treeSize, size: this.size });
    assertIndex(leafIndex, 0, treeSize - 1, 'leafIndex', { leafIndex, treeSize });
    return buildInclusionPath(this.#rangeHash, leafIndex, treeSize).map((h) => h.slice());
  }

  /**
   * The consistency proof from the tree of the first `oldSize` leaves to that of the first `newSize` (default:
   * all), RFC 9162 §2.1.4.1. MerkleError MERKLE_RANGE_ERROR unless 1 <= oldSize <= newSize <= size. O(log² n).
   */
  consistencyProof(oldSize: number, newSize: number = this.size): Uint8Array[] {
    assertIndex(newSize, 1, this.size, 'newSize', { oldSize, newSize, size: this.size });
    assertIndex(oldSize, 1, newSize, 'oldSize', { oldSize, newSize });
    return buildConsistencyPath(this.#rangeHash, oldSize, newSize).map((h) => h.slice());
  }

  /** MTH(D[start:end]) from the cache: O(1) for an aligned perfect subtree, else a fold of the RFC split. */
  readonly #rangeHash = (start: number, end: number): Uint8Array => {
    const n = end - start;
    if (n === 0) return hashEmpty();
    const j = exactLog2(n);
    if (j >= 0 && start % n === 0) return this.#levels[j]![start / n]!;
    const k = splitPoint(n);
    return hashChildren(this.#rangeHash(start, start + k), this.#rangeHash(start + k, end));
  };
}
