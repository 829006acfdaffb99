/**
 * The enrolment record (FORMAT.md §7 `device`): what ingest needs to accept a device's statements, and what a
 * bundle shows as its device. This is the one place its fields are checked: `stele ingest enrol`, the ingest
 * service, the enrolment request (request.ts) and the bundle parser (verifier) all call {@link checkEnrolmentRecord}.
 */
import { equalBytes, fromBase64Url } from '../bytes.ts';
import { SteleError } from '../errors.ts';
import { KEY_ID_LENGTH, keyIdOf } from '../keys.ts';
import type { KeyBackend } from '../signer.ts';

/** Every key backend a record or statement may name (core/src/signer.ts `KeyBackend`). */
export const KEY_BACKENDS: readonly KeyBackend[] = ['software', 'pkcs11', 'tpm', 'secure-element'];

/**
 * Codes of enrolment checking:
 * - `ENROLMENT_FORMAT_ERROR`: not an enrolment record / countersigned request (CBOR, COSE or a field).
 * - `ENROLMENT_SIGNATURE_INVALID`: the device key's signature (proof of possession) does not verify.
 * - `ENROLMENT_COUNTERSIGNATURE_INVALID`: the installer's countersignature does not verify.
 * - `ENROLMENT_INSTALLER_UNTRUSTED`: the countersignature verifies, but the installer key is not one the policy trusts.
 * - `ENROLMENT_ATTESTATION_INVALID`: the attestation is malformed or does not fit the declared key backend.
 */
export type EnrolmentErrorCode =
  | 'ENROLMENT_FORMAT_ERROR'
  | 'ENROLMENT_SIGNATURE_INVALID'
  | 'ENROLMENT_COUNTERSIGNATURE_INVALID'
  | 'ENROLMENT_INSTALLER_UNTRUSTED'
  | 'ENROLMENT_ATTESTATION_INVALID';

export class EnrolmentError extends SteleError<EnrolmentErrorCode> {}

/** What ingest needs to accept a device's statements (FORMAT.md §7 `device`). */
export interface EnrolmentRecord {
  deviceId: string;
  /** SEC1 uncompressed P-256 point, base64url. */
  publicKey: string;
  /** SHA-256 of the SEC1 point, base64url. */
  kid: string;
  keyBackend: KeyBackend;
  /** ISO 8601 with offset, when this record was made. */
  enrolledAt: string;
  site?: string;
}

/** A record that passed {@link checkEnrolmentRecord}, with its key decoded. */
export interface CheckedRecord {
  record: EnrolmentRecord;
  publicKey: Uint8Array;
  kid: Uint8Array;
}

/** Longest device id (FORMAT.md §2.2): it ends up in MQTT topics and store keys. */
export const MAX_DEVICE_ID_LENGTH = 128;
/** Longest site text. */
export const MAX_SITE_LENGTH = 256;

/** Throws `TypeError`/`RangeError` unless `deviceId` is a usable device id (1..128 chars, none of `/ + #`, no controls). */
export function checkDeviceId(deviceId: string): void {
  if (typeof deviceId !== 'string') throw new TypeError('deviceId must be a string');
  // eslint-disable-next-line no-control-regex
  if (deviceId.length === 0 || deviceId.length > MAX_DEVICE_ID_LENGTH || /[/+#\u0000-\u001f\u007f]/.test(deviceId)) {
    throw new RangeError('deviceId must be 1..128 characters without "/", "+", "#" or control characters');
  }
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** True for an ISO 8601 date-time with an offset that Date can read. */
export function isIsoTime(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 40 && ISO_TIME.test(s) && !Number.isNaN(Date.parse(s));
}

function bad(field: string, message: string, cause?: unknown): never {
  throw new EnrolmentError('ENROLMENT_FORMAT_ERROR', `${field}: ${message}`, { where: { field }, ...(cause === undefined ? {} : { cause }) });
}

/**
 * Checks an enrolment record from untrusted input (a parsed JSON object): exactly the keys deviceId, publicKey,
 * kid, keyBackend, enrolledAt and optional site; a usable device id; a P-256 SEC1 point whose key id is `kid`;
 * a known backend; an ISO 8601 time; a site of at most 256 characters. Throws EnrolmentError
 * `ENROLMENT_FORMAT_ERROR` with `where.field` naming the field at fault.
 */
export function checkEnrolmentRecord(value: unknown): CheckedRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('record', 'is not an object');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['deviceId', 'publicKey', 'kid', 'keyBackend', 'enrolledAt', 'site'].includes(k)) bad(k, 'is not a field of an enrolment record');
  }
  try {
    checkDeviceId(o.deviceId as string);
  } catch (cause) {
    bad('deviceId', 'is not a usable device id (1..128 characters, no "/", "+", "#" or controls)', cause);
  }
  let publicKey: Uint8Array;
  let computed: Uint8Array;
  try {
    if (typeof o.publicKey !== 'string' || o.publicKey.length > 100) throw new TypeError('not text');
    publicKey = fromBase64Url(o.publicKey);
    computed = keyIdOf(publicKey);
  } catch (cause) {
    bad('publicKey', 'is not a base64url P-256 SEC1 point', cause);
  }
  let kid: Uint8Array;
  try {
    if (typeof o.kid !== 'string' || o.kid.length > 64) throw new TypeError('not text');
    kid = fromBase64Url(o.kid);
  } catch (cause) {
    bad('kid', 'is not base64url', cause);
  }
  if (kid.length !== KEY_ID_LENGTH || !equalBytes(kid, computed)) bad('kid', 'is not the key id (SHA-256) of publicKey');
  if (!(KEY_BACKENDS as readonly unknown[]).includes(o.keyBackend)) bad('keyBackend', `is not one of ${KEY_BACKENDS.join(', ')}`);
  if (!isIsoTime(o.enrolledAt)) bad('enrolledAt', 'is not an ISO 8601 date-time with offset');
  if (o.site !== undefined && (typeof o.site !== 'string' || o.site.length > MAX_SITE_LENGTH)) bad('site', `is not text of at most ${MAX_SITE_LENGTH} characters`);
  const record: EnrolmentRecord = {
    deviceId: o.deviceId as string,
    publicKey: o.publicKey as string,
    kid: o.kid as string,
    keyBackend: o.keyBackend as KeyBackend,
    enrolledAt: o.enrolledAt as string,
    ...(o.site === undefined ? {} : { site: o.site as string }),
  };
  return { record, publicKey, kid };
}
