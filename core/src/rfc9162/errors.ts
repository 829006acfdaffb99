import { SteleError } from '../errors.ts';

/**
 * Codes raised by the RFC 9162 Merkle tree code.
 * - `INCLUSION_PROOF_ERROR`: an inclusion proof (RFC 9162 §2.1.3) is malformed or does not lead to the expected root.
 * - `CONSISTENCY_PROOF_ERROR`: a consistency proof (RFC 9162 §2.1.4) is malformed or does not join the two roots.
 * - `MERKLE_RANGE_ERROR`: a proof or root was asked for a leaf index or tree size the tree does not have.
 */
export type MerkleErrorCode = 'INCLUSION_PROOF_ERROR' | 'CONSISTENCY_PROOF_ERROR' | 'MERKLE_RANGE_ERROR';

/**
 * The error of `rfc9162/`. Verification raises it for any untrusted input that fails (never a crash, never a
 * boolean to forget); `where` carries the sizes and indices involved. Tests assert `code`, never message text.
 */
export class MerkleError extends SteleError<MerkleErrorCode> {}
