/**
 * Signed confirmations from ingest to a gateway (docs/FORMAT.md §11.1): "ingest has stored (or anchored) every seq
 * 1..upTo of `device`, and seq upTo has chain digest `head`", as a tagged COSE_Sign1 with an attached payload,
 * signed by the ingest key the gateway pinned at provisioning.
 *
 * Trust boundary: a confirmation comes from the broker, which anyone with a credential may publish to. The gateway
 * acts on it (moves its acked mark, lets retention prune) only after {@link checkConfirmation} with the pinned key
 * and its own device id, and after checking `head` against its own chain (the caller's job: core has no outbox).
 *
 * Protected header, exactly, in deterministic order: 1 (alg) -7 · 3 (content type) CONFIRMATION_CONTENT_TYPE ·
 * 4 (kid) bstr(32). Unprotected header: empty map. Payload: the deterministic CBOR map
 * `{"v": 1, "head": bstr(32), "iat": uint, "type": "stored"|"anchored", "upTo": uint >= 1, "device": tstr}`.
 */
import { equalBytes } from '../bytes.ts';
import { decodeCbor } from '../cbor.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { SteleError } from '../errors.ts';
import { assertP256PublicKey, KEY_ID_LENGTH, keyIdOf } from '../keys.ts';
import { DIGEST_LENGTH } from '../reading.ts';
import { ES256_SIGNATURE_LENGTH, type Signer } from '../signer.ts';
import { ALG_ES256, HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID } from './labels.ts';
import { checkLabelsAndAlg, decodeSign1Or, protectedKid, type FailFormat } from './parse-steps.ts';
import { copyBytes, encodeDeterministic } from './plain-bytes.ts';
import { encodeSign1, sigStructure1 } from './sign1.ts';

/** Content type (COSE label 3) of a confirmation, compared byte for byte. */
export const CONFIRMATION_CONTENT_TYPE = 'application/vnd.stele.confirmation+cbor; v=1';
/** `v` of a confirmation payload. */
export const CONFIRMATION_VERSION = 1;
/** Larger confirmation messages are not decoded (a device id is at most 128 bytes of UTF-8 x 4; ~400 bytes in all). */
export const CONFIRMATION_MAX_BYTES = 1024;

/** `stored`: ingest committed 1..upTo (the gateway may move its acked mark); `anchored`: 1..upTo are in anchored batches. */
export type ConfirmationType = 'stored' | 'anchored';

export interface ConfirmationBody {
  type: ConfirmationType;
  /** The device id (FORMAT.md §2.2) whose chain this confirms. */
  device: string;
  /** Every seq 1..upTo; >= 1. */
  upTo: number;
  /** Chain digest of seq upTo (reading digest, or SHA-256 of a lifecycle body). */
  head: Uint8Array;
  /** Ingest clock, seconds since the epoch (informational: no check depends on it). */
  issuedAt: number;
}

export interface ParsedConfirmation extends ConfirmationBody {
  kid: Uint8Array;
  protectedBytes: Uint8Array;
  payloadBytes: Uint8Array;
  signature: Uint8Array;
}

/**
 * - `CONFIRMATION_FORMAT_ERROR`: not the bytes of FORMAT.md §11.1 (unsigned, wrong labels, not deterministic...).
 * - `CONFIRMATION_KEY_ERROR`: signed under another kid than the pinned ingest key.
 * - `CONFIRMATION_SIGNATURE_ERROR`: the signature does not verify under the pinned key.
 * - `CONFIRMATION_DEVICE_ERROR`: it names another device.
 */
export type ConfirmationErrorCode = 'CONFIRMATION_FORMAT_ERROR' | 'CONFIRMATION_KEY_ERROR' | 'CONFIRMATION_SIGNATURE_ERROR' | 'CONFIRMATION_DEVICE_ERROR';
export class ConfirmationError extends SteleError<ConfirmationErrorCode> {}

const LABELS: ReadonlySet<number> = new Set([HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID]);
const PAYLOAD_KEYS = ['v', 'head', 'iat', 'type', 'upTo', 'device'];
const TYPES: readonly ConfirmationType[] = ['stored', 'anchored'];

const fail: FailFormat = (message, where, cause) => {
  throw new ConfirmationError('CONFIRMATION_FORMAT_ERROR', message, cause === undefined ? { where } : { where, cause });
};

function isUint(n: unknown, min: number): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= min;
}

function payloadMap(body: ConfirmationBody): Map<string, unknown> {
  return new Map<string, unknown>([
    ['v', CONFIRMATION_VERSION],
    ['head', body.head],
    ['iat', body.issuedAt],
    ['type', body.type],
    ['upTo', body.upTo],
    ['device', body.device],
  ]);
}

/** Signs a confirmation (FORMAT.md §11.1) with the ingest key. RangeError/TypeError on misuse. */
export async function signConfirmation(body: ConfirmationBody, signer: Signer): Promise<Uint8Array> {
  if (!TYPES.includes(body.type)) throw new RangeError("type must be 'stored' or 'anchored'");
  if (typeof body.device !== 'string' || body.device === '') throw new TypeError('device must be a non-empty string');
  if (!isUint(body.upTo, 1)) throw new RangeError('upTo must be a safe integer >= 1');
  if (!(body.head instanceof Uint8Array) || body.head.length !== DIGEST_LENGTH) throw new RangeError('head must be 32 bytes');
  if (!isUint(body.issuedAt, 0)) throw new RangeError('issuedAt must be a safe integer >= 0 (seconds)');
  if (signer.algorithm !== 'ES256') throw new TypeError('signer must be ES256');
  const protectedBytes = encodeDeterministic(
    new Map<number, unknown>([
      [HEADER_ALG, ALG_ES256],
      [HEADER_CONTENT_TYPE, CONFIRMATION_CONTENT_TYPE],
      [HEADER_KID, signer.keyId],
    ]),
  );
  const payload = encodeDeterministic(payloadMap({ ...body, head: copyBytes(body.head) }));
  const signature = await signer.sign(sigStructure1(protectedBytes, payload));
  if (signature.length !== ES256_SIGNATURE_LENGTH) throw new TypeError('signer returned a signature that is not 64 bytes');
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload, signature });
}

/** Parses a confirmation from untrusted bytes; the signature is not verified. ConfirmationError CONFIRMATION_FORMAT_ERROR. */
export function parseConfirmation(bytes: Uint8Array): ParsedConfirmation {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  if (bytes.length > CONFIRMATION_MAX_BYTES) fail(`confirmation is larger than ${CONFIRMATION_MAX_BYTES} bytes`, { field: 'size', sizeBytes: bytes.length });
  const cose = decodeSign1Or(bytes, 'confirmation', fail);
  if (!equalBytes(encodeSign1(cose), bytes)) fail('confirmation is not in deterministic encoding', { field: 'cose' });
  const h = cose.protectedHeader;
  checkLabelsAndAlg(h, LABELS, fail);
  if (h.get(HEADER_CONTENT_TYPE) !== CONFIRMATION_CONTENT_TYPE) fail('content type is not the confirmation type', { field: 'protected', label: HEADER_CONTENT_TYPE });
  const kid = protectedKid(h, fail);
  if (!equalBytes(encodeDeterministic(h), cose.protectedBytes)) fail('protected header is not in deterministic encoding', { field: 'protected' });
  if (cose.unprotectedHeader.size !== 0) fail('unprotected header is not empty', { field: 'unprotected' });
  if (cose.payload === null) fail('payload is detached', { field: 'payload' });
  if (cose.signature.length !== ES256_SIGNATURE_LENGTH) fail('signature is not 64 bytes', { field: 'signature' });
  let decoded: unknown;
  try {
    decoded = decodeCbor(cose.payload, { what: 'confirmation payload' });
  } catch (cause) {
    fail('payload is not valid CBOR', { field: 'payload' }, cause);
  }
  if (!(decoded instanceof Map)) fail('payload is not a map', { field: 'payload' });
  const m = decoded as Map<unknown, unknown>;
  if (m.size !== PAYLOAD_KEYS.length || PAYLOAD_KEYS.some((k) => !m.has(k))) fail(`payload keys are not exactly ${PAYLOAD_KEYS.join(', ')}`, { field: 'payload' });
  if (m.get('v') !== CONFIRMATION_VERSION) fail('v is not 1', { field: 'v' });
  const type = m.get('type');
  if (!TYPES.includes(type as ConfirmationType)) fail("type is not 'stored' or 'anchored'", { field: 'type' });
  const device = m.get('device');
  if (typeof device !== 'string' || device === '') fail('device is not a non-empty text', { field: 'device' });
  const upTo = m.get('upTo');
  if (!isUint(upTo, 1)) fail('upTo is not an integer in 1..2^53-1', { field: 'upTo' });
  const head = m.get('head');
  if (!(head instanceof Uint8Array) || head.length !== DIGEST_LENGTH) fail('head is not 32 bytes', { field: 'head' });
  const iat = m.get('iat');
  if (!isUint(iat, 0)) fail('iat is not an integer in 0..2^53-1', { field: 'iat' });
  const body: ConfirmationBody = { type: type as ConfirmationType, device: device as string, upTo: upTo as number, head: copyBytes(head as Uint8Array), issuedAt: iat as number };
  if (!equalBytes(encodeDeterministic(payloadMap(body)), cose.payload)) fail('payload is not in deterministic encoding', { field: 'payload' });
  return { ...body, kid: copyBytes(kid), protectedBytes: cose.protectedBytes, payloadBytes: cose.payload, signature: cose.signature };
}

/**
 * The whole check a gateway makes before acting on a confirmation (FORMAT.md §11.1), except the head digest
 * against its own chain: parse, kid = keyIdOf(pinned key), ES256 signature under the pinned key (high-S accepted),
 * `device` = this gateway's device id. Throws ConfirmationError with the code of the first failing step.
 */
export async function checkConfirmation(bytes: Uint8Array, expect: { publicKey: Uint8Array; device: string }): Promise<ParsedConfirmation> {
  assertP256PublicKey(expect.publicKey);
  if (typeof expect.device !== 'string') throw new TypeError('device must be a string');
  const c = parseConfirmation(bytes);
  const kid = keyIdOf(expect.publicKey);
  if (kid.length !== KEY_ID_LENGTH || !equalBytes(c.kid, kid)) throw new ConfirmationError('CONFIRMATION_KEY_ERROR', 'confirmation is not signed by the pinned ingest key', { where: { field: 'kid' } });
  if (!(await verifyEs256(expect.publicKey, sigStructure1(c.protectedBytes, c.payloadBytes), c.signature))) {
    throw new ConfirmationError('CONFIRMATION_SIGNATURE_ERROR', 'confirmation signature does not verify under the pinned ingest key', { where: { field: 'signature' } });
  }
  if (c.device !== expect.device) throw new ConfirmationError('CONFIRMATION_DEVICE_ERROR', 'confirmation names another device', { where: { field: 'device', device: c.device } });
  return c;
}
