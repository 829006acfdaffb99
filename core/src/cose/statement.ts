import { equalBytes } from '../bytes.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { FormatError } from '../errors.ts';
import { sha256 } from '../hash.ts';
import { KEY_ID_LENGTH } from '../keys.ts';
import { decodeReading, DIGEST_LENGTH } from '../reading.ts';
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
  HEADER_STELE_PREV,
  HEADER_STELE_SEQ,
} from './labels.ts';
import { decodeSign1, encodeSign1, sigStructure1 } from './sign1.ts';
import { copyBytes, encodeDeterministic } from './plain-bytes.ts';

/** preimage_content_type of a Stele statement (RFC 9995 label 259; FORMAT.md §3). */
export const READING_CONTENT_TYPE = 'application/vnd.stele.reading+cbor; v=1';

/** The fields of a statement's protected header that vary (FORMAT.md §3). */
export interface StatementHeaderFields {
  kid: Uint8Array;
  device: string;
  seq: number;
  prev: Uint8Array;
}

/**
 * Encodes the protected header of FORMAT.md §3 (deterministic CBOR). Exported for tests and tools that need a
 * header that does not match its reading; {@link signStatement} is the normal way in.
 */
export function encodeStatementProtectedHeader(fields: StatementHeaderFields): Uint8Array {
  const { kid, device, seq, prev } = fields;
  if (!(kid instanceof Uint8Array) || kid.length !== KEY_ID_LENGTH) throw new RangeError('kid must be 32 bytes');
  if (typeof device !== 'string') throw new TypeError('device must be a string');
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError('seq must be a safe integer >= 1');
  if (!(prev instanceof Uint8Array) || prev.length !== DIGEST_LENGTH) throw new RangeError('prev must be 32 bytes');
  return encodeDeterministic(
    new Map<number, unknown>([
      [HEADER_ALG, ALG_ES256],
      [HEADER_KID, kid],
      [HEADER_CWT_CLAIMS, new Map<number, unknown>([[CWT_SUB, device]])],
      [HEADER_PAYLOAD_HASH_ALG, ALG_SHA256],
      [HEADER_PREIMAGE_CONTENT_TYPE, READING_CONTENT_TYPE],
      [HEADER_STELE_SEQ, seq],
      [HEADER_STELE_PREV, prev],
    ]),
  );
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

/** A statement that has passed {@link parseStatement}. `toBeSigned` is the Sig_structure to verify. */
export interface ParsedStatement {
  kid: Uint8Array;
  device: string;
  seq: number;
  prev: Uint8Array;
  /** SHA-256 of the reading. */
  payload: Uint8Array;
  signature: Uint8Array;
  protectedBytes: Uint8Array;
  toBeSigned: Uint8Array;
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

/**
 * Parses a statement from untrusted bytes and checks that it is exactly FORMAT.md §3: tag 18; protected header
 * with exactly labels 1 (-7), 4 (32 bytes), 15 ({2: tstr}), 258 (-16), 259 (READING_CONTENT_TYPE), -65537
 * (seq >= 1), -65538 (32 bytes), in deterministic encoding (so label 3 is absent); empty unprotected header;
 * 32-byte payload; 64-byte signature; the whole COSE_Sign1 in deterministic encoding (its bytes are the Merkle
 * leaf, FORMAT.md §4, so one statement has one encoding). Does not verify the signature.
 * Throws FormatError `STATEMENT_FORMAT_ERROR` (the cause holds any COSE_FORMAT_ERROR).
 */
export function parseStatement(bytes: Uint8Array): ParsedStatement {
  let sign1;
  try {
    sign1 = decodeSign1(bytes);
  } catch (cause) {
    if (cause instanceof TypeError) throw cause;
    fail('statement is not a tagged COSE_Sign1', { field: 'cose' }, cause);
  }
  const { protectedBytes, protectedHeader: h, unprotectedHeader, payload, signature } = sign1;

  for (const label of h.keys()) if (!STATEMENT_LABELS.has(label)) fail('unexpected protected header label', { field: 'protected', label });
  if (h.get(HEADER_ALG) !== ALG_ES256) fail('alg is not ES256 (-7)', { field: 'protected', label: HEADER_ALG });
  const kid = h.get(HEADER_KID);
  if (!(kid instanceof Uint8Array) || kid.length !== KEY_ID_LENGTH) fail('kid is not 32 bytes', { field: 'protected', label: HEADER_KID });
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

  const canonicalProtected = encodeStatementProtectedHeader({ kid, device, seq, prev });
  if (!equalBytes(canonicalProtected, protectedBytes)) fail('protected header is not in deterministic encoding', { field: 'protected' });
  if (unprotectedHeader.size !== 0) fail('unprotected header is not empty', { field: 'unprotected' });
  if (!(payload instanceof Uint8Array) || payload.length !== DIGEST_LENGTH) fail('payload is not a 32-byte digest', { field: 'payload' });
  if (signature.length !== ES256_SIGNATURE_LENGTH) fail('signature is not 64 bytes', { field: 'signature' });
  const again = encodeSign1({ protectedBytes, unprotectedHeader, payload, signature });
  if (!equalBytes(again, bytes)) fail('COSE_Sign1 is not in deterministic encoding', { field: 'cose' });

  return {
    kid: copyBytes(kid),
    device,
    seq,
    prev: copyBytes(prev),
    payload: copyBytes(payload),
    signature: copyBytes(signature),
    protectedBytes: copyBytes(protectedBytes),
    toBeSigned: sigStructure1(protectedBytes, payload),
  };
}

/**
 * Verifies the ES256 signature of a parsed statement with `publicKey`. Only the signature: callers compare
 * `statement.kid` with keyIdOf(publicKey) themselves, so that a wrong kid and a bad signature stay two findings.
 */
export async function verifyStatementSignature(statement: ParsedStatement, publicKey: Uint8Array): Promise<boolean> {
  return verifyEs256(publicKey, statement.toBeSigned, statement.signature);
}

/**
 * Checks a statement against the reading it claims to sign (FORMAT.md §3): `DIGEST_MISMATCH` when
 * SHA-256(reading) differs from the payload (checked first, on the bytes, before decoding), `HEADER_MISMATCH`
 * when device, seq or prev in the protected header differ from the reading's. Throws FormatError
 * `READING_FORMAT_ERROR` when the digest matches but the reading is not a valid reading.
 */
export function checkStatementAgainstReading(statement: ParsedStatement, readingBytes: Uint8Array): 'ok' | 'DIGEST_MISMATCH' | 'HEADER_MISMATCH' {
  if (!(readingBytes instanceof Uint8Array)) throw new TypeError('readingBytes must be a Uint8Array');
  if (!equalBytes(sha256(readingBytes), statement.payload)) return 'DIGEST_MISMATCH';
  const reading = decodeReading(readingBytes);
  if (reading.device !== statement.device || reading.seq !== statement.seq || !equalBytes(reading.prev, statement.prev)) {
    return 'HEADER_MISMATCH';
  }
  return 'ok';
}
