/**
 * The MQTT payloads of FORMAT.md §11 that are plain CBOR maps, one encoder and one bounded decoder each, for the
 * gateway and ingest alike: the statement message (gateway → ingest) and the reject (ingest → gateway). The acks
 * payload is the signed confirmation of §11.1: `signConfirmation` / `parseConfirmation` / `checkConfirmation` of
 * `@stele/core/cose` (a COSE structure, so it lives with the other COSE codecs). Health is JSON the gateway alone
 * writes and nobody in Stele reads (edge-agent's ops/health-topic.ts).
 *
 * Trust boundary: the decoders take bytes from the broker, which anyone with a credential may publish to. They
 * check the size before decoding, decode strictly (FORMAT.md §0) and check the exact shape, and throw only
 * `WireError`: `WIRE_LIMIT_ERROR` for too many bytes, `WIRE_FORMAT_ERROR` for anything else. Signatures are not
 * their business (the statement's are ingest's, §11 step 5; rejects are unsigned, §11.1).
 */
import { utf8 } from '../bytes.ts';
import { decodeCborChecked, encodeCbor } from '../cbor.ts';
import { SteleError } from '../errors.ts';

/**
 * - `WIRE_LIMIT_ERROR`: the payload is larger than the decoder's bound (ingest: `INGEST_OVERSIZE`).
 * - `WIRE_FORMAT_ERROR`: not the CBOR map of FORMAT.md §11 (ingest: `INGEST_MALFORMED`; gateway: a bad message).
 */
export type WireErrorCode = 'WIRE_LIMIT_ERROR' | 'WIRE_FORMAT_ERROR';
export class WireError extends SteleError<WireErrorCode> {}

/** Ingest's default bound on a statement message (FORMAT.md §11 step 1; configurable there). */
export const STATEMENT_MESSAGE_MAX_BYTES = 65_536;
/** A reject's `code` is 1 ..= this many bytes of UTF-8 (FORMAT.md §11). */
export const REJECT_CODE_MAX_BYTES = 64;
/** Larger rejects are not decoded: the largest valid one (seq 2^53 - 1, a 64-byte code) is 85 bytes. */
export const REJECT_MAX_BYTES = 128;

/** `stele/v1/<device>/statements`: the statement (§3) and, in full mode, the reading (§2) bytes exactly as stored. */
export interface StatementMessage {
  statement: Uint8Array;
  /** Present in full mode; absent in hash-only mode. */
  reading?: Uint8Array;
}

/** `stele/v1/<device>/rejects`: statement `seq` (0 when it could not be parsed) was rejected with `code`. */
export interface RejectMessage {
  seq: number;
  code: string;
}

/** The deterministic CBOR of a statement message, `{"statement"}` or `{"reading", "statement"}`. TypeError on misuse. */
export function encodeStatementMessage(m: StatementMessage): Uint8Array {
  if (!(m.statement instanceof Uint8Array)) throw new TypeError('statement must be a Uint8Array');
  if (m.reading === undefined) return encodeCbor({ statement: m.statement });
  if (!(m.reading instanceof Uint8Array)) throw new TypeError('reading must be a Uint8Array when given');
  return encodeCbor({ statement: m.statement, reading: m.reading });
}

/**
 * A statement message from untrusted bytes (FORMAT.md §11 steps 1 and 2): at most `maxBytes`, a strictly decoded
 * CBOR map with a `statement` byte string, an optional `reading` byte string and no other key (key order not
 * checked). The byte strings are returned as decoded, not copied. The statement itself is not parsed here.
 * `views: true`: they may be views into `bytes`, for a caller that owns `bytes` and never changes it.
 */
export function decodeStatementMessage(bytes: Uint8Array, maxBytes: number = STATEMENT_MESSAGE_MAX_BYTES, options: { views?: boolean } = {}): StatementMessage {
  const m = decodeMap(bytes, maxBytes, 'statement message', options.views === true);
  const statement = m.get('statement');
  const reading = m.get('reading');
  if (!(statement instanceof Uint8Array)) fail('statement message', 'statement is missing or not a byte string', 'statement');
  if (reading !== undefined && !(reading instanceof Uint8Array)) fail('statement message', 'reading is not a byte string', 'reading');
  onlyKeys(m, ['statement', 'reading'], 'statement message');
  return reading === undefined ? { statement } : { statement, reading };
}

/** The deterministic CBOR of a reject, `{"seq", "code"}`. RangeError/TypeError on misuse. */
export function encodeReject(r: RejectMessage): Uint8Array {
  if (!isUint(r.seq)) throw new RangeError('seq must be a safe integer >= 0');
  if (!isRejectCode(r.code)) throw new RangeError(`code must be text of 1..${REJECT_CODE_MAX_BYTES} bytes`);
  return encodeCbor({ seq: r.seq, code: r.code });
}

/**
 * A reject from untrusted bytes (FORMAT.md §11): at most REJECT_MAX_BYTES, a strictly decoded CBOR map with exactly
 * the keys `seq` (uint) and `code` (text of 1 ..= 64 bytes), key order not checked.
 */
export function decodeReject(bytes: Uint8Array): RejectMessage {
  const m = decodeMap(bytes, REJECT_MAX_BYTES, 'reject');
  const seq = m.get('seq');
  const code = m.get('code');
  if (!isUint(seq)) fail('reject', 'seq is missing or not an integer in 0..2^53-1', 'seq');
  if (!isRejectCode(code)) fail('reject', `code is missing or not text of 1..${REJECT_CODE_MAX_BYTES} bytes`, 'code');
  onlyKeys(m, ['seq', 'code'], 'reject');
  return { seq, code };
}

function fail(what: string, message: string, field: string, cause?: unknown): never {
  throw new WireError('WIRE_FORMAT_ERROR', `${what}: ${message}`, cause === undefined ? { where: { message: what, field } } : { where: { message: what, field }, cause });
}

/** Size bound, then strict decoding (FORMAT.md §0) to a map; any decoder failure becomes WIRE_FORMAT_ERROR. */
function decodeMap(bytes: Uint8Array, maxBytes: number, what: string, views = false): Map<unknown, unknown> {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  if (bytes.byteLength > maxBytes) {
    throw new WireError('WIRE_LIMIT_ERROR', `${what}: ${bytes.byteLength} bytes, more than ${maxBytes}`, { where: { message: what, sizeBytes: bytes.byteLength } });
  }
  let value: unknown;
  try {
    value = decodeCborChecked(bytes, { what, views }).value;
  } catch (cause) {
    fail(what, 'not strictly decoded CBOR', 'cbor', cause);
  }
  if (!(value instanceof Map)) fail(what, 'not a CBOR map', 'cbor');
  return value as Map<unknown, unknown>;
}

function onlyKeys(m: Map<unknown, unknown>, keys: readonly string[], what: string): void {
  for (const k of m.keys()) if (!keys.includes(k as string)) fail(what, `unexpected key ${typeof k === 'string' ? JSON.stringify(k.slice(0, 64)) : typeof k}`, 'keys');
}

function isUint(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function isRejectCode(c: unknown): c is string {
  if (typeof c !== 'string' || c.length === 0 || c.length > REJECT_CODE_MAX_BYTES) return false;
  return utf8(c).length <= REJECT_CODE_MAX_BYTES;
}
