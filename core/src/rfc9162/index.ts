/**
 * RFC 9162 §2.1 Merkle trees (Certificate Transparency v2 tree hashing, SHA-256), as Stele uses them for
 * batches of statements: hashing (§2.1.1), building proofs (§2.1.3.1, §2.1.4.1), verifying proofs (§2.1.3.2,
 * §2.1.4.2) and an append-only tree for the log side.
 */
export { MerkleError } from './errors.ts';
export type { MerkleErrorCode } from './errors.ts';
export { HASH_SIZE, LEAF_PREFIX, NODE_PREFIX, hashChildren, hashEmpty, hashLeaf } from './hash.ts';
export { consistencyProof, inclusionProof, rootFromLeafHashes } from './proof-build.ts';
export { rootFromInclusionProof, verifyConsistency, verifyInclusion } from './proof-verify.ts';
export { MerkleTree } from './merkle-tree.ts';
export { BatchProofs } from './batch-proofs.ts';
