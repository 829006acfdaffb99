/**
 * Device lifecycle statements (docs/FORMAT.md §13): enrolment, key rotation, revocation and agent reinstall, as
 * signed statements in the same log as readings (each one a Merkle leaf, anchored like a reading).
 *
 * A lifecycle statement is a tagged COSE_Sign1 (RFC 9052 §4.2) with an **attached** payload: the deterministic
 * CBOR body below, not its digest, so that the statement alone says what it does (a gateway in hash-only mode
 * sends statements only). Protected header, exactly, in deterministic order:
 *
 *   1 (alg) -7 · 3 (content type) LIFECYCLE_CONTENT_TYPE · 4 (kid) bstr(32) · 15 (CWT claims) {2 (sub): device}
 *   and, for the two types that occupy a seq in the device's hash chain (rotation, reinstall) only:
 *   -65537 (stele seq) uint · -65538 (stele prev) bstr(32)
 *
 * Who signs: enrolment and revocation by the ingest key (the device may be stolen); rotation by the device key
 * being rotated out; reinstall by the device key. A chained statement's chain digest (what the next reading's
 * `prev` holds) is SHA-256 of its body, as a reading's is SHA-256 of the reading.
 */
import { equalBytes } from '../bytes.ts';
import { decodeCbor } from '../cbor.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { FormatError } from '../errors.ts';
import { sha256 } from '../hash.ts';
import { KEY_ID_LENGTH, keyIdOf, P256_PUBLIC_KEY_LENGTH } from '../keys.ts';
import { DIGEST_LENGTH } from '../reading.ts';
import { MAX_SITE_LENGTH } from '../enrolment/record.ts';
import { ES256_SIGNATURE_LENGTH, type KeyBackend, type Signer } from '../signer.ts';
import { ALG_ES256, CWT_SUB, HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_CWT_CLAIMS, HEADER_KID, HEADER_STELE_PREV, HEADER_STELE_SEQ } from '../cose/labels.ts';
import { copyBytes, encodeDeterministic } from '../cose/plain-bytes.ts';
import { decodeSign1, encodeSign1, sigStructure1 } from '../cose/sign1.ts';
import { checkLabelsAndAlg, decodeSign1Or, protectedKid } from '../cose/parse-steps.ts';

/** Content type (COSE label 3) of every lifecycle statement, compared byte for byte. */
export const LIFECYCLE_CONTENT_TYPE = 'application/vnd.stele.lifecycle+cbor; v=1';
/** `v` of a lifecycle body. */
export const LIFECYCLE_VERSION = 1;

export type LifecycleType = 'enrolment' | 'rotation' | 'revocation' | 'reinstall';

/** Ingest registered `key` for `device` (from an enrolment request whose file hashes to `request`). */
export interface EnrolmentBody {
  type: 'enrolment';
  device: string;
  /** keyIdOf(key). */
  kid: Uint8Array;
  /** SEC1 uncompressed P-256 point, 65 bytes. */
  key: Uint8Array;
  backend: KeyBackend;
  /** SHA-256 of the enrolment request file (or of the plain record's deterministic CBOR, FORMAT.md §13.2). */
  request: Uint8Array;
  /** First seq this key may sign: 1 for a new device, head + 1 for a re-enrolment after revocation. */
  from: number;
  /** Ingest clock, ms since the epoch: when ingest enrolled the key. */
  time: number;
  /** Where the gateway is, as the installer's request (or the operator's record) says; "" when none was given. */
  site: string;
  /**
   * Key id of the installer whose countersignature ingest checked against its trusted installer keys; empty
   * (zero bytes) when the operator enrolled a plain record with no countersignature.
   */
  installer: Uint8Array;
}

/** The device's current key (the statement's kid) hands over to `key` from the next seq on. */
export interface RotationBody {
  type: 'rotation';
  device: string;
  /** keyIdOf(key) of the new key. */
  kid: Uint8Array;
  key: Uint8Array;
  backend: KeyBackend;
  /** Device time, ms (untrusted, FORMAT.md §8). */
  time: number;
}

/** Ingest revoked `kid`: statements under it with seq > `after` are invalid. */
export interface RevocationBody {
  type: 'revocation';
  device: string;
  kid: Uint8Array;
  /** The device's committed head seq when ingest logged the revocation. */
  after: number;
  /** Free text (e.g. `stolen`, `decommissioned`). */
  reason: string;
  /** Ingest clock, ms. */
  time: number;
}

/** The agent was reinstalled with its key but without its outbox; the chain continues from the head ingest confirmed. */
export interface ReinstallBody {
  type: 'reinstall';
  device: string;
  /** Device time, ms (untrusted). */
  time: number;
}

export type LifecycleBody = EnrolmentBody | RotationBody | RevocationBody | ReinstallBody;

/** Rotation and reinstall occupy a seq in the device's chain; enrolment and revocation do not. */
export function isChainedType(type: LifecycleType): type is 'rotation' | 'reinstall' {
  return type === 'rotation' || type === 'reinstall';
}

/** Position in the device's chain of a chained statement. */
export interface ChainLink {
  seq: number;
  prev: Uint8Array;
}

/** A statement that passed {@link parseLifecycleStatement}; its signature is not yet verified. */
export interface ParsedLifecycle {
  kid: Uint8Array;
  device: string;
  /** Present exactly for rotation and reinstall. */
  seq?: number;
  prev?: Uint8Array;
  body: LifecycleBody;
  /** The attached payload bytes. */
  bodyBytes: Uint8Array;
  /** SHA-256(bodyBytes): for a chained statement, what the next reading's `prev` holds. */
  digest: Uint8Array;
  signature: Uint8Array;
  protectedBytes: Uint8Array;
  toBeSigned: Uint8Array;
}

const BACKENDS: readonly KeyBackend[] = ['software', 'pkcs11', 'tpm', 'secure-element'];

const BODY_KEYS: Record<LifecycleType, readonly string[]> = {
  enrolment: ['kid', 'key', 'backend', 'request', 'from', 'time', 'site', 'installer'],
  rotation: ['kid', 'key', 'backend', 'time'],
  revocation: ['kid', 'after', 'reason', 'time'],
  reinstall: ['time'],
};

function fail(message: string, where: Record<string, unknown>, cause?: unknown): never {
  throw new FormatError('STATEMENT_FORMAT_ERROR', message, cause === undefined ? { where } : { where, cause });
}

function bodyModel(body: LifecycleBody): Record<string, unknown> {
  const out: Record<string, unknown> = { v: LIFECYCLE_VERSION, type: body.type, device: body.device };
  for (const k of BODY_KEYS[body.type]) out[k] = (body as unknown as Record<string, unknown>)[k];
  return out;
}

/**
 * Encodes a lifecycle body as deterministic CBOR (text keys `v`, `type`, `device` and the type's own keys).
 * The result always decodes with {@link decodeLifecycleBody}; anything that would not is misuse (TypeError).
 */
export function encodeLifecycleBody(body: LifecycleBody): Uint8Array {
  if (body === null || typeof body !== 'object') throw new TypeError('body must be an object');
  if (!(body.type in BODY_KEYS)) throw new TypeError('body.type is not a lifecycle type');
  const bytes = encodeDeterministic(bodyModel(body));
  try {
    decodeLifecycleBody(bytes);
  } catch (cause) {
    throw new TypeError('lifecycle body is not valid per FORMAT.md §13', { cause });
  }
  return bytes;
}

function uint(v: unknown, field: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(`${field} is not an integer >= ${min}`, { field });
  return v;
}

function bstr(v: unknown, field: string, length: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== length) fail(`${field} is not a ${length}-byte string`, { field });
  return copyBytes(v);
}

function text(v: unknown, field: string): string {
  if (typeof v !== 'string') fail(`${field} is not text`, { field });
  return v;
}

function boundedText(v: unknown, field: string, max: number): string {
  const t = text(v, field);
  if (t.length > max) fail(`${field} is longer than ${max} characters`, { field });
  return t;
}

function installerKid(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || (v.length !== 0 && v.length !== KEY_ID_LENGTH)) fail('body.installer is not a 32-byte key id or empty', { field: 'body.installer' });
  return copyBytes(v);
}

/** Decodes and checks a lifecycle body from untrusted bytes (exact keys and types, deterministic encoding). */
export function decodeLifecycleBody(bytes: Uint8Array): LifecycleBody {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  let decoded: unknown;
  try {
    decoded = decodeCbor(bytes, { what: 'lifecycle body' });
  } catch (cause) {
    fail('lifecycle body is not valid CBOR', { field: 'body' }, cause);
  }
  if (!(decoded instanceof Map)) fail('lifecycle body is not a map', { field: 'body' });
  const m = decoded;
  if (m.get('v') !== LIFECYCLE_VERSION) fail('lifecycle body v is not 1', { field: 'body.v' });
  const type = m.get('type');
  if (typeof type !== 'string' || !(type in BODY_KEYS)) fail('lifecycle body type is unknown', { field: 'body.type' });
  const allowed = ['v', 'type', 'device', ...BODY_KEYS[type as LifecycleType]];
  for (const k of m.keys()) if (typeof k !== 'string' || !allowed.includes(k)) fail('lifecycle body has an unknown key', { field: 'body', key: String(k) });
  for (const k of allowed) if (!m.has(k)) fail(`lifecycle body lacks "${k}"`, { field: `body.${k}` });
  const device = text(m.get('device'), 'body.device');
  const backend = (): KeyBackend => {
    const b = text(m.get('backend'), 'body.backend');
    if (!(BACKENDS as readonly string[]).includes(b)) fail('body.backend is not a known key backend', { field: 'body.backend' });
    return b as KeyBackend;
  };
  const keyAndKid = (): { key: Uint8Array; kid: Uint8Array } => {
    const key = bstr(m.get('key'), 'body.key', P256_PUBLIC_KEY_LENGTH);
    const kid = bstr(m.get('kid'), 'body.kid', KEY_ID_LENGTH);
    let computed: Uint8Array;
    try {
      computed = keyIdOf(key);
    } catch (cause) {
      fail('body.key is not a P-256 public key', { field: 'body.key' }, cause);
    }
    if (!equalBytes(computed, kid)) fail('body.kid is not the key id of body.key', { field: 'body.kid' });
    return { key, kid };
  };
  let body: LifecycleBody;
  switch (type as LifecycleType) {
    case 'enrolment':
      body = {
        type: 'enrolment', device, ...keyAndKid(), backend: backend(),
        request: bstr(m.get('request'), 'body.request', DIGEST_LENGTH),
        from: uint(m.get('from'), 'body.from', 1),
        time: uint(m.get('time'), 'body.time', 0),
        site: boundedText(m.get('site'), 'body.site', MAX_SITE_LENGTH),
        installer: installerKid(m.get('installer')),
      };
      break;
    case 'rotation':
      body = { type: 'rotation', device, ...keyAndKid(), backend: backend(), time: uint(m.get('time'), 'body.time', 0) };
      break;
    case 'revocation':
      body = {
        type: 'revocation', device,
        kid: bstr(m.get('kid'), 'body.kid', KEY_ID_LENGTH),
        after: uint(m.get('after'), 'body.after', 0),
        reason: text(m.get('reason'), 'body.reason'),
        time: uint(m.get('time'), 'body.time', 0),
      };
      break;
    case 'reinstall':
      body = { type: 'reinstall', device, time: uint(m.get('time'), 'body.time', 0) };
      break;
  }
  if (!equalBytes(encodeDeterministic(bodyModel(body)), bytes)) fail('lifecycle body is not in deterministic encoding', { field: 'body' });
  return body;
}

/** The protected header of a lifecycle statement (deterministic CBOR). RangeError on misuse. */
export function encodeLifecycleProtectedHeader(kid: Uint8Array, device: string, link?: ChainLink): Uint8Array {
  if (!(kid instanceof Uint8Array) || kid.length !== KEY_ID_LENGTH) throw new RangeError('kid must be 32 bytes');
  if (typeof device !== 'string') throw new TypeError('device must be a string');
  const h = new Map<number, unknown>([
    [HEADER_ALG, ALG_ES256],
    [HEADER_CONTENT_TYPE, LIFECYCLE_CONTENT_TYPE],
    [HEADER_KID, kid],
    [HEADER_CWT_CLAIMS, new Map<number, unknown>([[CWT_SUB, device]])],
  ]);
  if (link !== undefined) {
    if (!Number.isSafeInteger(link.seq) || link.seq < 1) throw new RangeError('link.seq must be a safe integer >= 1');
    if (!(link.prev instanceof Uint8Array) || link.prev.length !== DIGEST_LENGTH) throw new RangeError('link.prev must be 32 bytes');
    h.set(HEADER_STELE_SEQ, link.seq);
    h.set(HEADER_STELE_PREV, link.prev);
  }
  return encodeDeterministic(h);
}

/**
 * Signs a lifecycle statement. `link` (seq and prev in the device's chain) is required for rotation and
 * reinstall and forbidden for enrolment and revocation (RangeError). The kid is the signer's.
 */
export async function signLifecycleStatement(body: LifecycleBody, signer: Signer, link?: ChainLink): Promise<Uint8Array> {
  if (signer.algorithm !== 'ES256') throw new TypeError('signer must be ES256');
  const bodyBytes = encodeLifecycleBody(body);
  if (isChainedType(body.type) !== (link !== undefined)) {
    throw new RangeError(`a ${body.type} statement ${isChainedType(body.type) ? 'needs' : 'takes no'} seq and prev`);
  }
  const protectedBytes = encodeLifecycleProtectedHeader(signer.keyId, body.device, link);
  const signature = await signer.sign(sigStructure1(protectedBytes, bodyBytes));
  if (!(signature instanceof Uint8Array) || signature.length !== ES256_SIGNATURE_LENGTH) {
    throw new RangeError('signer returned a signature that is not 64 bytes (r || s)');
  }
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload: bodyBytes, signature });
}

/**
 * True when `bytes` decode as a COSE_Sign1 whose protected content type (label 3) is LIFECYCLE_CONTENT_TYPE: the
 * cheap test that routes a statement to {@link parseLifecycleStatement} instead of parseStatement. Never throws
 * on bad input (false).
 */
export function isLifecycleStatement(bytes: Uint8Array): boolean {
  try {
    return decodeSign1(bytes).protectedHeader.get(HEADER_CONTENT_TYPE) === LIFECYCLE_CONTENT_TYPE;
  } catch {
    return false;
  }
}

const LABELS = new Set([HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID, HEADER_CWT_CLAIMS, HEADER_STELE_SEQ, HEADER_STELE_PREV]);

/**
 * Parses a lifecycle statement from untrusted bytes and checks that it is exactly FORMAT.md §13: tag 18;
 * protected header with exactly the labels above (seq and prev present exactly for rotation and reinstall) in
 * deterministic encoding; empty unprotected header; attached payload that is a valid body naming the same device
 * as `sub`; 64-byte signature; the whole in deterministic encoding. Does not verify the signature.
 * Throws FormatError `STATEMENT_FORMAT_ERROR`.
 */
export function parseLifecycleStatement(bytes: Uint8Array): ParsedLifecycle {
  const { protectedBytes, protectedHeader: h, unprotectedHeader, payload, signature } = decodeSign1Or(bytes, 'lifecycle statement', fail);
  checkLabelsAndAlg(h, LABELS, fail);
  if (h.get(HEADER_CONTENT_TYPE) !== LIFECYCLE_CONTENT_TYPE) fail('content type is not the lifecycle type', { field: 'protected', label: HEADER_CONTENT_TYPE });
  const kid = protectedKid(h, fail);
  const claims = h.get(HEADER_CWT_CLAIMS);
  if (!(claims instanceof Map) || claims.size !== 1 || typeof claims.get(CWT_SUB) !== 'string') {
    fail('CWT claims are not exactly {2 (sub): tstr}', { field: 'protected', label: HEADER_CWT_CLAIMS });
  }
  const device = claims.get(CWT_SUB) as string;
  if (unprotectedHeader.size !== 0) fail('unprotected header is not empty', { field: 'unprotected' });
  if (payload === null) fail('payload is detached', { field: 'payload' });
  if (signature.length !== ES256_SIGNATURE_LENGTH) fail('signature is not 64 bytes', { field: 'signature' });
  const body = decodeLifecycleBody(payload);
  if (body.device !== device) fail('body device differs from sub', { field: 'body.device' });
  let link: ChainLink | undefined;
  if (isChainedType(body.type)) {
    const seq = h.get(HEADER_STELE_SEQ);
    const prev = h.get(HEADER_STELE_PREV);
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) fail('seq is not an integer >= 1', { field: 'protected', label: HEADER_STELE_SEQ });
    if (!(prev instanceof Uint8Array) || prev.length !== DIGEST_LENGTH) fail('prev is not 32 bytes', { field: 'protected', label: HEADER_STELE_PREV });
    link = { seq, prev: copyBytes(prev) };
  } else if (h.has(HEADER_STELE_SEQ) || h.has(HEADER_STELE_PREV)) {
    fail(`a ${body.type} statement carries no seq or prev`, { field: 'protected' });
  }
  if (!equalBytes(encodeLifecycleProtectedHeader(kid, device, link), protectedBytes)) fail('protected header is not in deterministic encoding', { field: 'protected' });
  if (!equalBytes(encodeSign1({ protectedBytes, unprotectedHeader, payload, signature }), bytes)) {
    fail('COSE_Sign1 is not in deterministic encoding', { field: 'cose' });
  }
  const out: ParsedLifecycle = {
    kid: copyBytes(kid),
    device,
    body,
    bodyBytes: copyBytes(payload),
    digest: sha256(payload),
    signature: copyBytes(signature),
    protectedBytes: copyBytes(protectedBytes),
    toBeSigned: sigStructure1(protectedBytes, payload),
  };
  if (link !== undefined) {
    out.seq = link.seq;
    out.prev = link.prev;
  }
  return out;
}

/** Verifies the ES256 signature of a parsed lifecycle statement with `publicKey` (callers compare kids themselves). */
export async function verifyLifecycleSignature(statement: ParsedLifecycle, publicKey: Uint8Array): Promise<boolean> {
  return verifyEs256(publicKey, statement.toBeSigned, statement.signature);
}
