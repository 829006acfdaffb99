/**
 * Checking RFC 9162 proofs: inclusion (§2.1.3.2) and consistency (§2.1.4.2). This is the verifier side and
 * deliberately shares no proof logic with `proof-build.ts` (as in transparency-dev/merkle's `proof/verify.go`).
 *
 * Trust boundary: every argument except the types may come from an untrusted party (a receipt, an evidence
 * bundle, a log). Anything that fails raises MerkleError with INCLUSION_PROOF_ERROR or CONSISTENCY_PROOF_ERROR,
 * including impossible indices and sizes (not integers, too large, out of range) and hashes of the wrong length.
 * Arguments of the wrong JavaScript type (not a Uint8Array, proof not an array) are misuse: TypeError.
 */
import { equalBytes } from '../bytes.ts';
import { MerkleError } from './errors.ts';
import { HASH_SIZE, hashChildren } from './hash.ts';

function assertBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
}

function assertProofArray(proof: readonly Uint8Array[]): void {
  if (!Array.isArray(proof)) throw new TypeError('proof must be an array of Uint8Arrays');
  for (let i = 0; i < proof.length; i++) assertBytes(proof[i], `proof[${i}]`);
}

/** Safe integer >= 0: JSON and CBOR can carry 2^64 - 1, which a JS number cannot hold exactly. */
function isSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

const half = (n: number): number => Math.floor(n / 2); // not `>>`: sizes may exceed 2^31
const isOdd = (n: number): boolean => n % 2 === 1;

function isPowerOfTwo(n: number): boolean {
  let m = n;
  while (m > 1 && !isOdd(m)) m = half(m);
  return m === 1;
}

/**
 * The root hash that an inclusion proof leads to, by the algorithm of RFC 9162 §2.1.3.2 (steps 1–4 and the `sn`
 * check of step 5); the caller compares it with a root it trusts (for example, one signed in a receipt and
 * anchored on chain). Throws MerkleError INCLUSION_PROOF_ERROR when the proof is malformed: leafIndex >= treeSize,
 * an index or size that is not a safe integer, a leaf hash or proof node that is not 32 bytes, or a proof of the
 * wrong length for (leafIndex, treeSize).
 */
export function rootFromInclusionProof(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  assertBytes(leafHash, 'leafHash');
  assertProofArray(proof);
  const where = { leafIndex, treeSize, proofLength: proof.length };
  const fail = (message: string): never => {
    throw new MerkleError('INCLUSION_PROOF_ERROR', message, { where });
  };
  if (!isSize(leafIndex) || !isSize(treeSize)) fail('leaf index and tree size must be non-negative safe integers');
  // Step 1: leaf_index >= tree_size fails (this includes the empty tree, which has no leaves).
  if (leafIndex >= treeSize) fail('leaf index is not below the tree size');
  if (leafHash.length !== HASH_SIZE) fail(`leaf hash is ${leafHash.length} bytes, not ${HASH_SIZE}`);
  // Step 2, 3.
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  // Step 4.
  for (const p of proof) {
    if (p.length !== HASH_SIZE) fail(`a proof node is ${p.length} bytes, not ${HASH_SIZE}`);
    if (sn === 0) fail('the proof is longer than the path for this leaf index and tree size');
    if (isOdd(fn) || fn === sn) {
      r = hashChildren(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5 (first half): sn must be 0, or the proof was too short.
  if (sn !== 0) fail('the proof is shorter than the path for this leaf index and tree size');
  return r;
}

/**
 * Verifies that `leafHash` is the leaf at `leafIndex` of the tree of size `treeSize` whose root is `root`
 * (RFC 9162 §2.1.3.2). Returns nothing on success; throws MerkleError INCLUSION_PROOF_ERROR when the proof is
 * malformed (see `rootFromInclusionProof`) or leads to a different root.
 */
export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  assertBytes(root, 'root');
  const computed = rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
  if (!equalBytes(computed, root)) {
    throw new MerkleError('INCLUSION_PROOF_ERROR', 'the inclusion proof leads to a different root', {
      where: { leafIndex, treeSize, proofLength: proof.length },
    });
  }
}

/**
 * Verifies that the tree of size `size1` with root `root1` is a prefix of the tree of size `size2` with root
 * `root2` (RFC 9162 §2.1.4.2). Returns nothing on success; throws MerkleError CONSISTENCY_PROOF_ERROR otherwise.
 *
 * Policy for the cases the RFC algorithm leaves open (the same as transparency-dev/merkle and its test vectors):
 * - size1 > size2 fails;
 * - size1 == 0 fails: §2.1.4.1 defines proofs only for 0 < m, and "consistent with the empty tree" proves nothing;
 * - size1 == size2 needs an empty proof and root1 equal to root2, byte for byte whatever their length
 *   (PROOF(n, D_n) is empty by §2.1.4.1; step 1 of §2.1.4.2, "an empty path fails", is about size1 < size2; the
 *   vector `consistency/additional/sizes-are-equal-one-and-proof-is-empty` expects 12-byte equal roots to pass);
 * - otherwise both roots and every proof node must be 32 bytes, then the algorithm of §2.1.4.2 runs as written.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  assertBytes(root1, 'root1');
  assertBytes(root2, 'root2');
  assertProofArray(proof);
  const where = { size1, size2, proofLength: proof.length };
  const fail = (message: string): never => {
    throw new MerkleError('CONSISTENCY_PROOF_ERROR', message, { where });
  };
  if (!isSize(size1) || !isSize(size2)) fail('tree sizes must be non-negative safe integers');
  if (size1 > size2) fail('size1 is greater than size2');
  if (size1 === 0) fail('a consistency proof from the empty tree is not defined (RFC 9162 §2.1.4.1: 0 < m)');
  if (size1 === size2) {
    if (proof.length !== 0) fail('sizes are equal but the proof is not empty');
    if (!equalBytes(root1, root2)) fail('sizes are equal but the roots differ');
    return;
  }
  if (root1.length !== HASH_SIZE || root2.length !== HASH_SIZE) fail(`roots must be ${HASH_SIZE} bytes`);
  for (const c of proof) if (c.length !== HASH_SIZE) fail(`a proof node is ${c.length} bytes, not ${HASH_SIZE}`);
  // Step 1: an empty consistency_path fails.
  if (proof.length === 0) fail('the proof is empty');
  // Step 2: if first is an exact power of 2, prepend first_hash.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  // Step 3.
  let fn = size1 - 1;
  let sn = size2 - 1;
  // Step 4: while LSB(fn) is set, right-shift both.
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  let fr = path[0]!;
  let sr = path[0]!;
  // Step 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) fail('the proof is longer than the path between these sizes');
    if (isOdd(fn) || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // Step 7.
  if (sn !== 0) fail('the proof is shorter than the path between these sizes');
  if (!equalBytes(fr, root1)) fail('the proof does not lead to root1');
  if (!equalBytes(sr, root2)) fail('the proof does not lead to root2');
}
