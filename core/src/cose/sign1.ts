import { decodeCborChecked, Tagged } from '../cbor.ts';
import { FormatError } from '../errors.ts';
import { COSE_SIGN1_TAG } from './labels.ts';
import { encodeDeterministic, plainBytes } from './plain-bytes.ts';

/** A decoded COSE_Sign1 (RFC 9052 §4.2). `payload` is null when detached. */
export interface CoseSign1 {
  protectedBytes: Uint8Array;
  protectedHeader: Map<number, unknown>;
  unprotectedHeader: Map<number, unknown>;
  payload: Uint8Array | null;
  signature: Uint8Array;
}

/**
 * decodeSign1's result, and what the decoder found: `deterministic` true when the bytes are exactly encodeSign1
 * of the parts (deterministic CBOR), `protectedDeterministic` the same for the protected header; false says
 * nothing. Parsers that require the deterministic encoding (parse-steps.ts) skip encoding them again.
 */
export interface CheckedSign1 {
  sign1: CoseSign1;
  deterministic: boolean;
  protectedDeterministic: boolean;
}

/** Encodes a tagged COSE_Sign1 (tag 18) with deterministic CBOR. `payload: null` encodes a detached payload (`nil`). */
export function encodeSign1(parts: {
  protectedBytes: Uint8Array;
  unprotectedHeader: Map<number, unknown>;
  payload: Uint8Array | null;
  signature: Uint8Array;
}): Uint8Array {
  const { protectedBytes, unprotectedHeader, payload, signature } = parts;
  if (!(protectedBytes instanceof Uint8Array)) throw new TypeError('protectedBytes must be a Uint8Array');
  if (!(unprotectedHeader instanceof Map)) throw new TypeError('unprotectedHeader must be a Map');
  if (payload !== null && !(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array or null');
  if (!(signature instanceof Uint8Array)) throw new TypeError('signature must be a Uint8Array');
  return encodeDeterministic(new Tagged(COSE_SIGN1_TAG, [protectedBytes, unprotectedHeader, payload, signature]));
}

function coseFail(message: string, where: Record<string, unknown>, cause?: unknown): never {
  throw new FormatError('COSE_FORMAT_ERROR', message, cause === undefined ? { where } : { where, cause });
}

/** Header labels are integers in Stele (RFC 9052 §3 also allows text labels; Stele uses none). */
function checkHeaderMap(value: unknown, field: string): Map<number, unknown> {
  if (!(value instanceof Map)) coseFail(`${field} header is not a map`, { field });
  for (const key of value.keys()) {
    if (typeof key !== 'number' || !Number.isSafeInteger(key)) coseFail(`${field} header has a non-integer label`, { field });
  }
  return value as Map<number, unknown>;
}

/**
 * Decodes a COSE_Sign1 from untrusted bytes (strict CBOR). It must carry tag 18 unless `allowUntagged` is set
 * (RFC 9052 §2 lets an application know the type from context; Stele always tags). Checks: a 4-element array,
 * protected a byte string holding a map (zero length = empty map), unprotected a map, payload bytes or nil,
 * signature bytes, integer labels, no label in both headers (RFC 9052 §3). Does not check algorithms or lengths:
 * parseStatement and parseReceipt do. Throws FormatError `COSE_FORMAT_ERROR`.
 */
export function decodeSign1(bytes: Uint8Array, options: { allowUntagged?: boolean } = {}): CoseSign1 {
  return decodeSign1Checked(bytes, options).sign1;
}

/**
 * decodeSign1, and whether the bytes were found deterministic (CheckedSign1). `views: true`: the byte strings may
 * be views into `bytes`, for a caller that owns `bytes` and never changes it.
 */
export function decodeSign1Checked(bytes: Uint8Array, options: { allowUntagged?: boolean; views?: boolean } = {}): CheckedSign1 {
  const views = options.views === true;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  let decoded: unknown;
  let deterministic: boolean;
  try {
    ({ value: decoded, deterministic } = decodeCborChecked(bytes, { tags: [COSE_SIGN1_TAG], what: 'COSE_Sign1', views }));
  } catch (cause) {
    coseFail('COSE_Sign1 is not valid CBOR (or carries a tag other than 18)', { field: 'cbor' }, cause);
  }
  let body: unknown;
  if (decoded instanceof Tagged) {
    body = decoded.value;
  } else if (options.allowUntagged === true) {
    body = decoded;
  } else {
    coseFail('COSE_Sign1 lacks tag 18', { field: 'tag' });
  }
  if (!Array.isArray(body) || body.length !== 4) coseFail('COSE_Sign1 is not a 4-element array', { field: 'structure' });
  const [protectedBytes, unprotected, payload, signature] = body as [unknown, unknown, unknown, unknown];
  if (!(protectedBytes instanceof Uint8Array)) coseFail('protected header is not a byte string', { field: 'protected' });
  if (payload !== null && !(payload instanceof Uint8Array)) coseFail('payload is neither bytes nor nil', { field: 'payload' });
  if (!(signature instanceof Uint8Array)) coseFail('signature is not a byte string', { field: 'signature' });
  const unprotectedHeader = checkHeaderMap(unprotected, 'unprotected');

  let protectedHeader: Map<number, unknown>;
  let protectedDeterministic = false;
  if (protectedBytes.length === 0) {
    protectedHeader = new Map();
  } else {
    let inner: unknown;
    try {
      ({ value: inner, deterministic: protectedDeterministic } = decodeCborChecked(protectedBytes, { what: 'protected header', views }));
    } catch (cause) {
      coseFail('protected header is not valid CBOR', { field: 'protected' }, cause);
    }
    protectedHeader = checkHeaderMap(inner, 'protected');
  }
  for (const label of protectedHeader.keys()) {
    if (unprotectedHeader.has(label)) coseFail('a label appears in both headers', { field: 'unprotected', label });
  }
  const sign1: CoseSign1 = {
    protectedBytes: plainBytes(protectedBytes),
    protectedHeader,
    unprotectedHeader,
    payload: payload === null ? null : plainBytes(payload),
    signature: plainBytes(signature),
  };
  // Untagged input is not what encodeSign1 (always tagged) writes.
  return { sign1, deterministic: deterministic && decoded instanceof Tagged, protectedDeterministic };
}

const EMPTY = new Uint8Array(0);

/**
 * The Sig_structure of a COSE_Sign1 (RFC 9052 §4.4): `["Signature1", body_protected, external_aad, payload]`,
 * deterministic CBOR. A protected header that is an encoded empty map (`h'A0'`) counts as "no protected
 * attributes", for which §4.4 uses a zero-length byte string. `externalAad` defaults to `h''` (Stele uses none).
 */
export function sigStructure1(protectedBytes: Uint8Array, payload: Uint8Array, externalAad: Uint8Array = EMPTY): Uint8Array {
  if (!(protectedBytes instanceof Uint8Array)) throw new TypeError('protectedBytes must be a Uint8Array');
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
  if (!(externalAad instanceof Uint8Array)) throw new TypeError('externalAad must be a Uint8Array');
  const bodyProtected = protectedBytes.length === 1 && protectedBytes[0] === 0xa0 ? EMPTY : protectedBytes;
  return encodeDeterministic(['Signature1', bodyProtected, externalAad, payload]);
}
