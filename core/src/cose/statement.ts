import { equalBytes } from '../bytes.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { FormatError } from '../errors.ts';
import { sha256 } from '../hash.ts';
import { KEY_ID_LENGTH } from '../keys.ts';
import { decodeReading, DIGEST_LENGTH, type Reading } from '../reading.ts';
import { hashLeaf, inclusionProof, rootFromInclusionProof, rootFromLeafHashes } from '../rfc9162/index.ts';
import { ES256_SIGNATURE_LENGTH, type Signer } from '../signer.ts';
import {
  ALG_ES256,
  ALG_SHA256,
  CWT_SUB,
  HEADER_ALG,
  HEADER_CWT_CLAIMS,
  HEADER_KID,
  HEADER_PAYLOAD_HASH_ALG,
  HEADER_PREIMAGE_CONTENT_TYPE,
  HEADER_STELE_BATCH_SIZE,
  HEADER_STELE_PREV,
  HEADER_STELE_SEQ,
  HEADER_VDP,
  HEADER_VDS,
  VDP_INCLUSION_PROOFS,
  VDS_RFC9162_SHA256,
} from './labels.ts';
import { encodeSign1, sigStructure1 } from './sign1.ts';
import { copyBytes, encodeDeterministic } from './plain-bytes.ts';
import { checkLabelsAndAlg, decodeProofBytes, decodeSign1Or, protectedKid } from './parse-steps.ts';

/** preimage_content_type of a Stele statement (RFC 9995 label 259; FORMAT.md §3). */
export const READING_CONTENT_TYPE = 'application/vnd.stele.reading+cbor; v=1';

/** The fields of a statement's protected header that vary (FORMAT.md §3, §3.1). */
export interface StatementHeaderFields {
  kid: Uint8Array;
  device: string;
  /** The reading's seq; for a device-level batch, the seq of its first reading. */
  seq: number;
  /** The reading's prev; for a device-level batch, the prev of its first reading. */
  prev: Uint8Array;
  /**
   * K, the number of readings of a device-level batch (FORMAT.md §3.1), >= 2: the header then also carries
   * 395 (vds) = 1 and -65540 = K. Absent for a single-reading statement (§3).
   */
  batchSize?: number;
}

/**
 * Encodes the protected header of FORMAT.md §3 (or §3.1 when `fields.batchSize` is given), deterministic CBOR.
 * Exported for tests and tools that need a header that does not match its reading; {@link signStatement} and
 * {@link signBatchedStatements} are the normal way in.
 */
export function encodeStatementProtectedHeader(fields: StatementHeaderFields): Uint8Array {
  const { kid, device, seq, prev, batchSize } = fields;
  if (!(kid instanceof Uint8Array) || kid.length !== KEY_ID_LENGTH) throw new RangeError('kid must be 32 bytes');
  if (typeof device !== 'string') throw new TypeError('device must be a string');
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError('seq must be a safe integer >= 1');
  if (!(prev instanceof Uint8Array) || prev.length !== DIGEST_LENGTH) throw new RangeError('prev must be 32 bytes');
  if (batchSize !== undefined && (!Number.isSafeInteger(batchSize) || batchSize < 2 || !Number.isSafeInteger(seq + batchSize - 1))) {
    throw new RangeError('batchSize must be a safe integer >= 2 with seq + batchSize - 1 <= 2^53 - 1');
  }
  const header = new Map<number, unknown>([
    [HEADER_ALG, ALG_ES256],
    [HEADER_KID, kid],
    [HEADER_CWT_CLAIMS, new Map<number, unknown>([[CWT_SUB, device]])],
    [HEADER_PAYLOAD_HASH_ALG, ALG_SHA256],
    [HEADER_PREIMAGE_CONTENT_TYPE, READING_CONTENT_TYPE],
    [HEADER_STELE_SEQ, seq],
    [HEADER_STELE_PREV, prev],
  ]);
  if (batchSize !== undefined) {
    header.set(HEADER_VDS, VDS_RFC9162_SHA256);
    header.set(HEADER_STELE_BATCH_SIZE, batchSize);
  }
  return encodeDeterministic(header);
}

/**
 * Signs a reading as a FORMAT.md §3 statement: tagged COSE_Sign1, payload SHA-256(reading), empty unprotected
 * header; device, seq and prev come from the reading (which must decode with decodeReading), kid from the signer.
 */
export async function signStatement(readingBytes: Uint8Array, signer: Signer): Promise<Uint8Array> {
  let reading;
  try {
    reading = decodeReading(readingBytes);
  } catch (cause) {
    throw new TypeError('readingBytes is not a valid reading', { cause });
  }
  if (signer.algorithm !== 'ES256') throw new TypeError('signer must be ES256');
  const protectedBytes = encodeStatementProtectedHeader({
    kid: signer.keyId,
    device: reading.device,
    seq: reading.seq,
    prev: reading.prev,
  });
  const payload = sha256(readingBytes);
  const signature = await signer.sign(sigStructure1(protectedBytes, payload));
  if (!(signature instanceof Uint8Array) || signature.length !== ES256_SIGNATURE_LENGTH) {
    throw new RangeError('signer returned a signature that is not 64 bytes (r || s)');
  }
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload, signature });
}

/**
 * Signs K consecutive readings of one device chain with ONE signature (FORMAT.md §3.1, device-level batch): the
 * signature covers the RFC 9162 root of the K reading digests (leaf i = hashLeaf(digest of reading i)); each
 * reading still gets its own statement (payload = its digest, the batch's protected header, its inclusion proof
 * in the unprotected header), so each stays its own ingest leaf and its own link of the hash chain.
 *
 * One reading gives exactly {@link signStatement}'s bytes (the K = 1 case is the single-reading form). Returns the
 * statements in reading order. Misuse: an empty list (RangeError), a reading that does not decode (TypeError),
 * readings of different devices, seqs that are not consecutive, or a prev that is not the digest of the reading
 * before it (RangeError).
 */
export async function signBatchedStatements(readingBytes: readonly Uint8Array[], signer: Signer): Promise<Uint8Array[]> {
  if (!Array.isArray(readingBytes) || readingBytes.length === 0) throw new RangeError('readingBytes must be a non-empty array');
  if (readingBytes.length === 1) return [await signStatement(readingBytes[0]!, signer)];
  if (signer.algorithm !== 'ES256') throw new TypeError('signer must be ES256');
  const readings: Reading[] = readingBytes.map((bytes, i) => {
    try {
      return decodeReading(bytes);
    } catch (cause) {
      throw new TypeError(`readingBytes[${i}] is not a valid reading`, { cause });
    }
  });
  const digests = readingBytes.map((bytes) => sha256(bytes));
  const first = readings[0]!;
  for (let i = 1; i < readings.length; i++) {
    const r = readings[i]!;
    if (r.device !== first.device) throw new RangeError('the readings of a batch must be of one device');
    if (r.seq !== first.seq + i) throw new RangeError('the readings of a batch must have consecutive seqs');
    if (!equalBytes(r.prev, digests[i - 1]!)) throw new RangeError(`readingBytes[${i}].prev is not the digest of the reading before it`);
  }
  const count = readings.length;
  const protectedBytes = encodeStatementProtectedHeader({ kid: signer.keyId, device: first.device, seq: first.seq, prev: first.prev, batchSize: count });
  const leaves = digests.map((d) => hashLeaf(d));
  const root = rootFromLeafHashes(leaves);
  const signature = await signer.sign(sigStructure1(protectedBytes, root));
  if (!(signature instanceof Uint8Array) || signature.length !== ES256_SIGNATURE_LENGTH) {
    throw new RangeError('signer returned a signature that is not 64 bytes (r || s)');
  }
  return digests.map((payload, index) =>
    encodeSign1({ protectedBytes, unprotectedHeader: batchUnprotectedHeader(count, index, inclusionProof(leaves, index)), payload, signature }),
  );
}

/** `{396: {-1: [bstr .cbor [K, index, path]]}}`, the proof of a reading in its device-level batch (§3.1). */
function batchUnprotectedHeader(count: number, index: number, path: Uint8Array[]): Map<number, unknown> {
  const proofBytes = encodeDeterministic([count, index, path]);
  return new Map<number, unknown>([[HEADER_VDP, new Map<number, unknown>([[VDP_INCLUSION_PROOFS, [proofBytes]]])]]);
}

/** Where a statement of a device-level batch (FORMAT.md §3.1) sits in its batch. */
export interface StatementBatch {
  /** Seq of the batch's first reading (header -65537). */
  first: number;
  /** K, the number of readings the batch signature covers (header -65540), >= 2. */
  count: number;
  /** This reading's leaf index, 0 ..= count - 1: its seq is first + index. */
  index: number;
  /** RFC 9162 inclusion path of hashLeaf(payload) at `index` in a tree of `count` leaves, leaf up. */
  path: Uint8Array[];
  /** The root computed from the payload and the path: the detached payload the signature covers. */
  root: Uint8Array;
  /** prev of the batch's first reading (header -65538). */
  prev: Uint8Array;
}

/** A statement that has passed {@link parseStatement}. `toBeSigned` is the Sig_structure to verify. */
export interface ParsedStatement {
  kid: Uint8Array;
  device: string;
  /** The reading's seq: the header's -65537, or for a device-level batch `batch.first + batch.index`. */
  seq: number;
  /**
   * The prev the statement itself signs for its reading: the header's -65538 for a single-reading statement and
   * for the first reading of a device-level batch; undefined for the other readings of a batch (index > 0), whose
   * link is the reading body's prev or, hash-only, the signed order of the batch's tree (FORMAT.md §3.1).
   */
  prev: Uint8Array | undefined;
  /** SHA-256 of the reading. */
  payload: Uint8Array;
  signature: Uint8Array;
  protectedBytes: Uint8Array;
  /** Sig_structure with the payload (§3), or for a device-level batch with the batch root (§3.1). */
  toBeSigned: Uint8Array;
  /** Present for a statement of a device-level batch (FORMAT.md §3.1). */
  batch?: StatementBatch;
}

function fail(message: string, where: Record<string, unknown>, cause?: unknown): never {
  throw new FormatError('STATEMENT_FORMAT_ERROR', message, cause === undefined ? { where } : { where, cause });
}

const STATEMENT_LABELS = new Set([
  HEADER_ALG,
  HEADER_KID,
  HEADER_CWT_CLAIMS,
  HEADER_PAYLOAD_HASH_ALG,
  HEADER_PREIMAGE_CONTENT_TYPE,
  HEADER_STELE_SEQ,
  HEADER_STELE_PREV,
]);
/** A device-level batch (FORMAT.md §3.1) adds vds and the batch size. */
const BATCH_LABELS = new Set([...STATEMENT_LABELS, HEADER_VDS, HEADER_STELE_BATCH_SIZE]);

/** `[K, index, path]` from the bytes in the unprotected header of a batched statement (§3.1). */
function parseBatchProof(u: Map<number, unknown>): { count: number; index: number; path: Uint8Array[] } {
  if (u.size !== 1 || !u.has(HEADER_VDP)) fail('unprotected header of a batched statement is not exactly {396: vdp}', { field: 'unprotected' });
  const vdp = u.get(HEADER_VDP);
  if (!(vdp instanceof Map) || vdp.size !== 1 || !vdp.has(VDP_INCLUSION_PROOFS)) fail('vdp is not exactly {-1: proofs}', { field: 'vdp' });
  const proofs = vdp.get(VDP_INCLUSION_PROOFS);
  if (!Array.isArray(proofs) || proofs.length !== 1 || !(proofs[0] instanceof Uint8Array)) {
    fail('vdp does not hold exactly one inclusion proof byte string', { field: 'vdp' });
  }
  const { treeSize: count, leafIndex: index, path } = decodeProofBytes(proofs[0] as Uint8Array, 2, fail);
  return { count, index, path };
}

/**
 * Parses a statement from untrusted bytes and checks that it is exactly FORMAT.md §3 or §3.1: tag 18; protected
 * header with exactly labels 1 (-7), 4 (32 bytes), 15 ({2: tstr}), 258 (-16), 259 (READING_CONTENT_TYPE), -65537
 * (seq >= 1), -65538 (32 bytes), in deterministic encoding (so label 3 is absent); 32-byte payload; 64-byte
 * signature; the whole COSE_Sign1 in deterministic encoding (its bytes are the Merkle leaf, FORMAT.md §4, so one
 * statement has one encoding). A single-reading statement has an empty unprotected header. A statement of a
 * device-level batch (§3.1) also has 395 (1) and -65540 (K >= 2) in its protected header and exactly
 * `{396: {-1: [bstr .cbor [K, index, path]]}}` as its unprotected header, with a path that is well formed for its
 * index and K (the root is computed here: `batch.root`, and `toBeSigned` is over it).
 * Does not verify the signature. Throws FormatError `STATEMENT_FORMAT_ERROR` (the cause holds any COSE_FORMAT_ERROR
 * or INCLUSION_PROOF_ERROR). `views: true`: kid, prev, payload, signature and protectedBytes may be views into
 * `bytes`, for a caller that owns `bytes` and never changes it (else they are copies of their own).
 */
export function parseStatement(bytes: Uint8Array, options: { views?: boolean } = {}): ParsedStatement {
  const views = options.views === true;
  const { protectedBytes, protectedHeader: h, unprotectedHeader, payload, signature, deterministic, protectedDeterministic } = decodeSign1Or(bytes, 'statement', fail, views);

  const batched = h.has(HEADER_VDS);
  checkLabelsAndAlg(h, batched ? BATCH_LABELS : STATEMENT_LABELS, fail);
  const kid = protectedKid(h, fail);
  const claims = h.get(HEADER_CWT_CLAIMS);
  if (!(claims instanceof Map) || claims.size !== 1 || typeof claims.get(CWT_SUB) !== 'string') {
    fail('CWT claims are not exactly {2 (sub): tstr}', { field: 'protected', label: HEADER_CWT_CLAIMS });
  }
  const device = claims.get(CWT_SUB) as string;
  if (h.get(HEADER_PAYLOAD_HASH_ALG) !== ALG_SHA256) fail('payload_hash_alg is not SHA-256 (-16)', { field: 'protected', label: HEADER_PAYLOAD_HASH_ALG });
  if (h.get(HEADER_PREIMAGE_CONTENT_TYPE) !== READING_CONTENT_TYPE) {
    fail('preimage_content_type is not the Stele reading type', { field: 'protected', label: HEADER_PREIMAGE_CONTENT_TYPE });
  }
  const seq = h.get(HEADER_STELE_SEQ);
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) fail('seq is not an integer >= 1', { field: 'protected', label: HEADER_STELE_SEQ });
  const prev = h.get(HEADER_STELE_PREV);
  if (!(prev instanceof Uint8Array) || prev.length !== DIGEST_LENGTH) fail('prev is not 32 bytes', { field: 'protected', label: HEADER_STELE_PREV });
  let batchSize: number | undefined;
  if (batched) {
    if (h.get(HEADER_VDS) !== VDS_RFC9162_SHA256) fail('vds is not RFC9162_SHA256 (1)', { field: 'protected', label: HEADER_VDS });
    const k = h.get(HEADER_STELE_BATCH_SIZE);
    if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 2 || !Number.isSafeInteger(seq + k - 1)) {
      fail('batch size is not an integer >= 2 (with first + K - 1 <= 2^53 - 1)', { field: 'protected', label: HEADER_STELE_BATCH_SIZE });
    }
    batchSize = k;
  }

  // Every label was checked above to be one of its fields with its value: bytes found deterministic while
  // decoding are the encoding of these fields (the encoding is not made again: a day of readings is 86,400 of them).
  if (!protectedDeterministic && !equalBytes(encodeStatementProtectedHeader(batchSize === undefined ? { kid, device, seq, prev } : { kid, device, seq, prev, batchSize }), protectedBytes)) fail('protected header is not in deterministic encoding', { field: 'protected' });
  if (!(payload instanceof Uint8Array) || payload.length !== DIGEST_LENGTH) fail('payload is not a 32-byte digest', { field: 'payload' });
  if (signature.length !== ES256_SIGNATURE_LENGTH) fail('signature is not 64 bytes', { field: 'signature' });
  let batch: StatementBatch | undefined;
  if (batchSize === undefined) {
    if (unprotectedHeader.size !== 0) fail('unprotected header is not empty', { field: 'unprotected' });
  } else {
    const proof = parseBatchProof(unprotectedHeader);
    if (proof.count !== batchSize) fail('the inclusion proof tree_size is not the batch size', { field: 'vdp.treeSize' });
    let root: Uint8Array;
    try {
      root = rootFromInclusionProof(proof.index, proof.count, hashLeaf(payload), proof.path);
    } catch (cause) {
      fail('the inclusion proof is malformed for its index and batch size', { field: 'vdp.path' }, cause);
    }
    batch = { first: seq, count: proof.count, index: proof.index, path: proof.path, root, prev: copyBytes(prev) };
  }
  if (!deterministic && !equalBytes(encodeSign1({ protectedBytes, unprotectedHeader, payload, signature }), bytes)) fail('COSE_Sign1 is not in deterministic encoding', { field: 'cose' });

  // Bytes found deterministic were read by cbor-fast, whose byte strings are copies of their own (or views the caller
  // asked for): not copied again.
  const own = views || (deterministic && protectedDeterministic) ? (x: Uint8Array) => x : copyBytes;
  const parsed: ParsedStatement = {
    kid: own(kid),
    device,
    seq: batch === undefined ? seq : seq + batch.index,
    prev: batch === undefined ? own(prev) : batch.index === 0 ? copyBytes(prev) : undefined,
    payload: own(payload),
    signature: own(signature),
    protectedBytes: own(protectedBytes),
    toBeSigned: sigStructure1(protectedBytes, batch === undefined ? payload : batch.root),
  };
  if (batch !== undefined) parsed.batch = batch;
  return parsed;
}

/**
 * Verifies the ES256 signature of a parsed statement with `publicKey`: over the payload (§3), or for a statement of
 * a device-level batch over the root its inclusion proof leads to (§3.1; `toBeSigned` holds either). Only the
 * signature: callers compare `statement.kid` with keyIdOf(publicKey) themselves, so that a wrong kid and a bad
 * signature stay two findings.
 */
export async function verifyStatementSignature(statement: ParsedStatement, publicKey: Uint8Array): Promise<boolean> {
  return verifyEs256(publicKey, statement.toBeSigned, statement.signature);
}

/**
 * Checks a statement against the reading it claims to sign (FORMAT.md §3): `DIGEST_MISMATCH` when
 * SHA-256(reading) differs from the payload (checked first, on the bytes, before decoding), `HEADER_MISMATCH`
 * when device, seq or prev in the protected header differ from the reading's (for a reading of a device-level
 * batch past its first, §3.1, the statement carries no prev of its own: device and seq only; the caller checks
 * the reading's prev as the chain link). Throws FormatError `READING_FORMAT_ERROR` when the digest matches but the
 * reading is not a valid reading. When `out` is given, `out.reading` receives the decoded reading (so that a caller
 * that needs its fields does not decode it again). `views` as decodeReading's.
 */
export function checkStatementAgainstReading(
  statement: ParsedStatement,
  readingBytes: Uint8Array,
  out?: { reading?: Reading },
  options: { views?: boolean } = {},
): 'ok' | 'DIGEST_MISMATCH' | 'HEADER_MISMATCH' {
  if (!(readingBytes instanceof Uint8Array)) throw new TypeError('readingBytes must be a Uint8Array');
  if (!equalBytes(sha256(readingBytes), statement.payload)) return 'DIGEST_MISMATCH';
  const reading = decodeReading(readingBytes, options);
  if (out !== undefined) out.reading = reading;
  if (reading.device !== statement.device || reading.seq !== statement.seq || (statement.prev !== undefined && !equalBytes(reading.prev, statement.prev))) {
    return 'HEADER_MISMATCH';
  }
  return 'ok';
}
