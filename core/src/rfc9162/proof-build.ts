/**
 * Building Merkle Tree Hashes and proofs over a list of leaf hashes: RFC 9162 §2.1.1 (MTH), §2.1.3.1 (inclusion
 * path, PATH) and §2.1.4.1 (consistency proof, PROOF/SUBPROOF). This is the log side; checking proofs is
 * `proof-verify.ts`, which shares no code with this file on purpose (as in transparency-dev/merkle), so that a
 * bug in one cannot hide the same bug in the other.
 *
 * Every function here is O(n) in hashing for n leaves. For repeated proofs over a growing log use `MerkleTree`,
 * which caches the complete subtrees and answers in O(log² n).
 */
import { MerkleError } from './errors.ts';
import { HASH_SIZE, hashChildren, hashEmpty, splitPoint } from './hash.ts';

/** The hash of the leaf range [start, end) as RFC 9162 §2.1.1 defines it (MTH of that slice). */
export type RangeHasher = (start: number, end: number) => Uint8Array;

/** Throws TypeError unless `leafHashes` is an array of 32-byte Uint8Arrays (leaf hashes are trusted log state). */
export function assertLeafHashes(leafHashes: readonly Uint8Array[], name = 'leafHashes'): void {
  if (!Array.isArray(leafHashes)) throw new TypeError(`${name} must be an array of 32-byte Uint8Arrays`);
  for (let i = 0; i < leafHashes.length; i++) {
    const h = leafHashes[i];
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
      throw new TypeError(`${name}[${i}] must be a ${HASH_SIZE}-byte Uint8Array`);
    }
  }
}

/**
 * MTH(D[start:end]) from leaf hashes, in one left-to-right pass with a stack of complete subtree roots
 * (end - start - 1 interior hashes, O(log n) memory). Folding the stack from the right gives exactly the
 * right-leaning tree of RFC 9162 §2.1.1, where the left subtree is always the largest power of two.
 */
function rangeRoot(leafHashes: readonly Uint8Array[], start: number, end: number): Uint8Array {
  if (end <= start) return hashEmpty();
  const stack: Uint8Array[] = [];
  for (let i = start; i < end; i++) {
    let node = leafHashes[i]!;
    // Merge while the count of leaves seen so far ends in a 1-bit that carries (a completed subtree of size 2^j).
    for (let count = i - start + 1; count % 2 === 0; count /= 2) node = hashChildren(stack.pop()!, node);
    stack.push(node);
  }
  let root = stack.pop()!;
  while (stack.length > 0) root = hashChildren(stack.pop()!, root);
  return root;
}

/**
 * MTH(D_n), the Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1). `[]` gives SHA-256("") (MTH({})).
 * O(n): n - 1 interior hashes. Throws TypeError if an element is not a 32-byte Uint8Array.
 */
export function rootFromLeafHashes(leafHashes: readonly Uint8Array[]): Uint8Array {
  assertLeafHashes(leafHashes);
  return rangeRoot(leafHashes, 0, leafHashes.length);
}

/**
 * PATH(m, D_n) of RFC 9162 §2.1.3.1 with the subtree hashes taken from `rangeHash`: the sibling hashes from the
 * leaf up to the root. The caller has checked 0 <= leafIndex < treeSize.
 */
export function buildInclusionPath(rangeHash: RangeHasher, leafIndex: number, treeSize: number): Uint8Array[] {
  const siblings: Uint8Array[] = [];
  let start = 0;
  let end = treeSize;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (leafIndex < start + k) {
      // PATH(m, D[0:k]) : MTH(D[k:n])
      siblings.push(rangeHash(start + k, end));
      end = start + k;
    } else {
      // PATH(m - k, D[k:n]) : MTH(D[0:k])
      siblings.push(rangeHash(start, start + k));
      start += k;
    }
  }
  return siblings.reverse(); // collected root-down; RFC order is leaf-up
}

/**
 * PROOF(m, D_n) = SUBPROOF(m, D_n, true) of RFC 9162 §2.1.4.1 with subtree hashes from `rangeHash`.
 * The caller has checked 1 <= oldSize <= newSize. oldSize == newSize gives [].
 */
export function buildConsistencyPath(rangeHash: RangeHasher, oldSize: number, newSize: number): Uint8Array[] {
  const nodes: Uint8Array[] = [];
  let start = 0;
  let end = newSize;
  let complete = true; // the flag b of SUBPROOF: D[start:end] starts at the left edge of the whole tree
  for (;;) {
    const m = oldSize - start;
    const n = end - start;
    if (m === n) {
      // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
      if (!complete) nodes.push(rangeHash(start, end));
      break;
    }
    const k = splitPoint(n);
    if (m <= k) {
      // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
      nodes.push(rangeHash(start + k, end));
      end = start + k;
    } else {
      // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
      nodes.push(rangeHash(start, start + k));
      start += k;
      complete = false;
    }
  }
  return nodes.reverse();
}

/** Throws MERKLE_RANGE_ERROR unless `value` is an integer with min <= value <= max. */
export function assertIndex(value: number, min: number, max: number, name: string, where: Record<string, unknown>): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new MerkleError('MERKLE_RANGE_ERROR', `${name} ${String(value)} is outside [${min}, ${max}]`, { where });
  }
}

/**
 * The inclusion proof (audit path) of leaf `leafIndex` in the tree of all `leafHashes` (RFC 9162 §2.1.3.1), leaf
 * up. Throws MerkleError MERKLE_RANGE_ERROR unless 0 <= leafIndex < leafHashes.length. O(n) hashing.
 */
export function inclusionProof(leafHashes: readonly Uint8Array[], leafIndex: number): Uint8Array[] {
  assertLeafHashes(leafHashes);
  const treeSize = leafHashes.length;
  assertIndex(leafIndex, 0, treeSize - 1, 'leafIndex', { leafIndex, treeSize });
  return buildInclusionPath((s, e) => rangeRoot(leafHashes, s, e), leafIndex, treeSize);
}

/**
 * The consistency proof from the tree of the first `oldSize` leaves to the tree of all `leafHashes`
 * (RFC 9162 §2.1.4.1). Requires 1 <= oldSize <= leafHashes.length (the RFC defines proofs for 0 < m; a proof from
 * the empty tree proves nothing), else MerkleError MERKLE_RANGE_ERROR. oldSize == length gives []. O(n) hashing.
 */
export function consistencyProof(leafHashes: readonly Uint8Array[], oldSize: number): Uint8Array[] {
  assertLeafHashes(leafHashes);
  const treeSize = leafHashes.length;
  assertIndex(oldSize, 1, treeSize, 'oldSize', { oldSize, treeSize });
  return buildConsistencyPath((s, e) => rangeRoot(leafHashes, s, e), oldSize, treeSize);
}
