/**
 * RFC 9162 §2.1.1 Merkle Tree Hash primitives, with SHA-256 as the hash (RFC 9162 §2.1, the only algorithm Stele
 * uses). Leaf and interior nodes are hashed with different one-byte prefixes so that a leaf can never be passed
 * off as an interior node (second-preimage resistance, RFC 9162 §2.1.1).
 */
import { sha256 } from '../hash.ts';

/** Prefix of a leaf hash input: MTH({d(0)}) = HASH(0x00 || d(0)). RFC 9162 §2.1.1. */
export const LEAF_PREFIX = 0x00;
/** Prefix of an interior node hash input: HASH(0x01 || left || right). RFC 9162 §2.1.1. */
export const NODE_PREFIX = 0x01;
/** Size in bytes of every node hash (SHA-256 output, RFC 9162 §2.1). */
export const HASH_SIZE = 32;

/** MTH({}) = HASH(), the hash of the empty tree (RFC 9162 §2.1.1). A fresh copy on each call. */
export function hashEmpty(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** Leaf hash: SHA-256(0x00 || data). RFC 9162 §2.1.1. `data` is the leaf input (in Stele: the statement bytes). */
export function hashLeaf(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError('hashLeaf: data must be a Uint8Array');
  const input = new Uint8Array(1 + data.length);
  input[0] = LEAF_PREFIX;
  input.set(data, 1);
  return sha256(input);
}

/**
 * Interior node hash: SHA-256(0x01 || left || right). RFC 9162 §2.1.1.
 * The inputs are not length-checked here (hot path: one call per interior node); callers that take hashes from
 * outside check them (see `proof-verify.ts`, `MerkleTree.append`).
 */
export function hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array {
  const input = new Uint8Array(1 + left.length + right.length);
  input[0] = NODE_PREFIX;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return sha256(input);
}

/** Largest power of two strictly smaller than `n` (n >= 2): the split point `k` of RFC 9162 §2.1.1. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
