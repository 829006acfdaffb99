import { equalBytes } from '../bytes.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { FormatError } from '../errors.ts';
import { KEY_ID_LENGTH } from '../keys.ts';
import { rootFromInclusionProof } from '../rfc9162/index.ts';
import { DIGEST_LENGTH } from '../reading.ts';
import { ES256_SIGNATURE_LENGTH, type Signer } from '../signer.ts';
import {
  ALG_ES256,
  CWT_IAT,
  CWT_ISS,
  HEADER_ALG,
  HEADER_CWT_CLAIMS,
  HEADER_KID,
  HEADER_STELE_BATCH_ID,
  HEADER_VDP,
  HEADER_VDS,
  VDP_INCLUSION_PROOFS,
  VDS_RFC9162_SHA256,
} from './labels.ts';
import { encodeSign1, sigStructure1 } from './sign1.ts';
import { copyBytes, encodeDeterministic } from './plain-bytes.ts';
import { checkLabelsAndAlg, decodeProofBytes, decodeSign1Or, protectedKid } from './parse-steps.ts';

/** An RFC 9162 inclusion proof as carried in a receipt: `[tree_size, leaf_index, [path...]]` (RFC 9942). */
export interface InclusionProof {
  treeSize: number;
  leafIndex: number;
  path: Uint8Array[];
}

/** What the ingest key signs about a batch besides its root (FORMAT.md §5). `issuedAt` is in seconds. */
export interface ReceiptClaims {
  kid: Uint8Array;
  issuer: string;
  issuedAt: number;
  batchId: number;
}

/** A receipt that has passed {@link parseReceipt}; its signature is not yet verified. */
export interface ParsedReceipt extends ReceiptClaims {
  proof: InclusionProof;
  protectedBytes: Uint8Array;
  signature: Uint8Array;
}

function isUint(n: unknown, min: number): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= min;
}

/** Encodes the receipt protected header of FORMAT.md §5 (deterministic CBOR). RangeError/TypeError on misuse. */
export function encodeReceiptProtectedHeader(claims: ReceiptClaims): Uint8Array {
  const { kid, issuer, issuedAt, batchId } = claims;
  if (!(kid instanceof Uint8Array) || kid.length !== KEY_ID_LENGTH) throw new RangeError('kid must be 32 bytes');
  if (typeof issuer !== 'string') throw new TypeError('issuer must be a string');
  if (!isUint(issuedAt, 0)) throw new RangeError('issuedAt must be a safe integer >= 0 (seconds)');
  if (!isUint(batchId, 1)) throw new RangeError('batchId must be a safe integer >= 1');
  return encodeDeterministic(
    new Map<number, unknown>([
      [HEADER_ALG, ALG_ES256],
      [HEADER_KID, kid],
      [HEADER_CWT_CLAIMS, new Map<number, unknown>([[CWT_ISS, issuer], [CWT_IAT, issuedAt]])],
      [HEADER_VDS, VDS_RFC9162_SHA256],
      [HEADER_STELE_BATCH_ID, batchId],
    ]),
  );
}

/**
 * Signs a batch root for receipts (FORMAT.md §5): ES256 over `["Signature1", protected, h'', root]`. One call
 * per batch; the result goes into every receipt of the batch with {@link encodeReceipt}.
 * `claims.kid` must equal `signer.keyId` (RangeError otherwise).
 */
export async function signBatchRoot(
  root: Uint8Array,
  claims: ReceiptClaims,
  signer: Signer,
): Promise<{ protectedBytes: Uint8Array; signature: Uint8Array }> {
  if (!(root instanceof Uint8Array) || root.length !== DIGEST_LENGTH) throw new RangeError('root must be 32 bytes');
  if (signer.algorithm !== 'ES256') throw new TypeError('signer must be ES256');
  if (!(claims.kid instanceof Uint8Array) || !equalBytes(claims.kid, signer.keyId)) throw new RangeError('claims.kid is not the signer key id');
  const protectedBytes = encodeReceiptProtectedHeader(claims);
  const signature = await signer.sign(sigStructure1(protectedBytes, root));
  if (!(signature instanceof Uint8Array) || signature.length !== ES256_SIGNATURE_LENGTH) {
    throw new RangeError('signer returned a signature that is not 64 bytes (r || s)');
  }
  return { protectedBytes, signature };
}

function checkProofShape(proof: InclusionProof): void {
  if (!isUint(proof.treeSize, 1)) throw new RangeError('proof.treeSize must be a safe integer >= 1');
  if (!isUint(proof.leafIndex, 0) || proof.leafIndex >= proof.treeSize) throw new RangeError('proof.leafIndex must be below treeSize');
  if (!Array.isArray(proof.path) || proof.path.some((p) => !(p instanceof Uint8Array) || p.length !== DIGEST_LENGTH)) {
    throw new RangeError('proof.path must be an array of 32-byte hashes');
  }
}

/**
 * Encodes one receipt (FORMAT.md §5): tagged COSE_Sign1 with the batch's protected header and signature, a
 * detached payload (nil) and the unprotected header `{396: {-1: [bstr .cbor [tree_size, leaf_index, path]]}}`.
 */
export function encodeReceipt(protectedBytes: Uint8Array, signature: Uint8Array, proof: InclusionProof): Uint8Array {
  if (!(protectedBytes instanceof Uint8Array)) throw new TypeError('protectedBytes must be a Uint8Array');
  if (!(signature instanceof Uint8Array) || signature.length !== ES256_SIGNATURE_LENGTH) throw new RangeError('signature must be 64 bytes');
  checkProofShape(proof);
  const proofBytes = encodeDeterministic([proof.treeSize, proof.leafIndex, proof.path]);
  const vdp = new Map<number, unknown>([[VDP_INCLUSION_PROOFS, [proofBytes]]]);
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map<number, unknown>([[HEADER_VDP, vdp]]), payload: null, signature });
}

function fail(message: string, where: Record<string, unknown>, cause?: unknown): never {
  throw new FormatError('RECEIPT_FORMAT_ERROR', message, cause === undefined ? { where } : { where, cause });
}

const RECEIPT_LABELS = new Set([HEADER_ALG, HEADER_KID, HEADER_CWT_CLAIMS, HEADER_VDS, HEADER_STELE_BATCH_ID]);

function parseProof(bytes: unknown): InclusionProof {
  if (!(bytes instanceof Uint8Array)) fail('inclusion proof is not a byte string', { field: 'vdp' });
  return decodeProofBytes(bytes, 1, fail);
}

/**
 * Parses a receipt from untrusted bytes and checks that it is exactly FORMAT.md §5: tag 18; protected header with
 * exactly labels 1 (-7), 4 (32 bytes), 15 ({1: tstr, 6: uint}), 395 (1), -65539 (batch id >= 1) in deterministic
 * encoding; detached payload (nil); 64-byte signature; unprotected header exactly {396: {-1: [one proof]}} with
 * a deterministic `[tree_size >= 1, leaf_index < tree_size, [32-byte hashes]]`; the whole in deterministic
 * encoding. Does not check the proof against a leaf or the signature (see {@link verifyReceipt}).
 * Throws FormatError `RECEIPT_FORMAT_ERROR`.
 */
export function parseReceipt(bytes: Uint8Array): ParsedReceipt {
  const { protectedBytes, protectedHeader: h, unprotectedHeader: u, payload, signature, deterministic, protectedDeterministic } = decodeSign1Or(bytes, 'receipt', fail);
  checkLabelsAndAlg(h, RECEIPT_LABELS, fail);
  const kid = protectedKid(h, fail);
  const claims = h.get(HEADER_CWT_CLAIMS);
  if (!(claims instanceof Map) || claims.size !== 2 || typeof claims.get(CWT_ISS) !== 'string' || !isUint(claims.get(CWT_IAT), 0)) {
    fail('CWT claims are not exactly {1 (iss): tstr, 6 (iat): uint}', { field: 'protected', label: HEADER_CWT_CLAIMS });
  }
  const issuer = claims.get(CWT_ISS) as string;
  const issuedAt = claims.get(CWT_IAT) as number;
  if (h.get(HEADER_VDS) !== VDS_RFC9162_SHA256) fail('vds is not RFC9162_SHA256 (1)', { field: 'protected', label: HEADER_VDS });
  const batchId = h.get(HEADER_STELE_BATCH_ID);
  if (!isUint(batchId, 1)) fail('batch id is not an integer >= 1', { field: 'protected', label: HEADER_STELE_BATCH_ID });
  // As in parseStatement: bytes found deterministic while decoding, with exactly these fields, are their encoding.
  if (!protectedDeterministic && !equalBytes(encodeReceiptProtectedHeader({ kid, issuer, issuedAt, batchId }), protectedBytes)) {
    fail('protected header is not in deterministic encoding', { field: 'protected' });
  }
  if (payload !== null) fail('payload is not detached (nil)', { field: 'payload' });
  if (signature.length !== ES256_SIGNATURE_LENGTH) fail('signature is not 64 bytes', { field: 'signature' });

  if (u.size !== 1 || !u.has(HEADER_VDP)) fail('unprotected header is not exactly {396: vdp}', { field: 'unprotected' });
  const vdp = u.get(HEADER_VDP);
  if (!(vdp instanceof Map) || vdp.size !== 1 || !vdp.has(VDP_INCLUSION_PROOFS)) fail('vdp is not exactly {-1: proofs}', { field: 'vdp' });
  const proofs = vdp.get(VDP_INCLUSION_PROOFS);
  if (!Array.isArray(proofs) || proofs.length !== 1) fail('vdp does not hold exactly one inclusion proof', { field: 'vdp' });
  const proof = parseProof(proofs[0]);

  if (!deterministic && !equalBytes(encodeSign1({ protectedBytes, unprotectedHeader: u, payload, signature }), bytes)) {
    fail('COSE_Sign1 is not in deterministic encoding', { field: 'cose' });
  }
  return { kid: copyBytes(kid), issuer, issuedAt, batchId, proof, protectedBytes: copyBytes(protectedBytes), signature: copyBytes(signature) };
}

/**
 * Verifies a receipt for the entry whose leaf hash is `leafHash` (FORMAT.md §5): computes the root from the
 * proof (RFC 9162 §2.1.3.2; throws MerkleError INCLUSION_PROOF_ERROR when the proof is malformed for its
 * index and size), then verifies the ES256 signature with that root as the detached payload. Does not compare
 * `receipt.kid` with the key: callers do. The returned root is what to compare with the anchored root.
 */
export async function verifyReceipt(
  receipt: ParsedReceipt,
  leafHash: Uint8Array,
  publicKey: Uint8Array,
): Promise<{ root: Uint8Array; signatureValid: boolean }> {
  const { leafIndex, treeSize, path } = receipt.proof;
  const root = rootFromInclusionProof(leafIndex, treeSize, leafHash, path);
  const signatureValid = await verifyEs256(publicKey, sigStructure1(receipt.protectedBytes, root), receipt.signature);
  return { root, signatureValid };
}
