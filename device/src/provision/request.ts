/**
 * The enrolment request a gateway writes at installation (issue #3): what the device is and which key it signs
 * with, signed by that key and countersigned by the installer's own key, so that it can travel on a USB stick.
 *
 * Bytes: a tagged COSE_Sign1 (RFC 9052 §4.2) by the installer, whose payload is a tagged COSE_Sign1 by the device
 * key, whose payload is the deterministic CBOR (RFC 8949 §4.2.1) of the request object below (text keys, text and
 * integer values only, so the same object reads as JSON). Protected headers: alg ES256 (-7), content type (3),
 * kid (4) = SHA-256 of the signer's SEC1 key (FORMAT.md §1).
 */
import { fromBase64Url, toBase64Url, toHex } from '@stele/core/bytes.ts';
import { decodeCbor, encodeCbor, isDeterministicCbor } from '@stele/core/cbor.ts';
import { ALG_ES256, HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID } from '@stele/core/cose/labels.ts';
import { decodeSign1, encodeSign1, sigStructure1 } from '@stele/core/cose/sign1.ts';
import { verifyEs256 } from '@stele/core/ecdsa.ts';
import { sha256 } from '@stele/core/hash.ts';
import { keyIdOf } from '@stele/core/keys.ts';
import type { KeyBackend, Signer } from '@stele/core/signer.ts';
import { checkDeviceId, type EnrolmentRecord } from '../enrolment.ts';
import type { Attestation, GatewayIdentity } from './identity.ts';
import { ProvisionError } from './errors.ts';

/** Content type of the device-signed request (protected header 3). */
export const ENROLMENT_CONTENT_TYPE = 'application/vnd.stele.enrolment+cbor';
/** Content type of the installer's countersignature: its payload is a COSE_Sign1 (RFC 9052 §9.1 media type). */
export const COUNTERSIGN_CONTENT_TYPE = 'application/cose; cose-type="cose-sign1"';
export const ENROLMENT_REQUEST_VERSION = 1;

/** One instrument the gateway reads: `id` plus free text or numeric facts (kind, model, serial, port...). */
export type InstrumentEntry = { id: string } & Record<string, string | number>;

export interface EnrolmentRequest {
  version: number;
  deviceId: string;
  /** SEC1 uncompressed P-256 point, base64url. */
  publicKey: string;
  /** SHA-256 of the point, base64url. */
  kid: string;
  keyBackend: KeyBackend;
  /** How the key store describes itself and the key (library, token, protection flags). */
  keyStore: Record<string, string | number | boolean>;
  attestation: Attestation;
  gateway: GatewayIdentity;
  site: string;
  instruments: InstrumentEntry[];
  installer: { name?: string; publicKey: string; kid: string };
  /** ISO 8601 (gateway clock: untrusted, informative). */
  createdAt: string;
}

/** What verifyEnrolmentRequest returns. */
export interface VerifiedEnrolment {
  request: EnrolmentRequest;
  /** The record ingest stores for the device (device/src/enrolment.ts). */
  record: EnrolmentRecord;
  /** Installer key id (base64url): who countersigned; whether that installer is trusted is ingest's policy. */
  installerKid: string;
  /** SHA-256 of the file bytes (hex), as in the QR summary. */
  fileSha256: string;
}

function protectedHeader(contentType: string, kid: Uint8Array): Uint8Array {
  return encodeCbor(
    new Map<number, unknown>([
      [HEADER_ALG, ALG_ES256],
      [HEADER_CONTENT_TYPE, contentType],
      [HEADER_KID, kid],
    ]),
  );
}

async function sign1(signer: Signer, contentType: string, payload: Uint8Array): Promise<Uint8Array> {
  const protectedBytes = protectedHeader(contentType, signer.keyId);
  const signature = await signer.sign(sigStructure1(protectedBytes, payload));
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload, signature });
}

/** Signs `request` with the device key, then countersigns with the installer key. Returns the file bytes. */
export async function signEnrolmentRequest(request: EnrolmentRequest, device: Signer, installer: Signer): Promise<Uint8Array> {
  if (request.kid !== toBase64Url(device.keyId)) throw new RangeError('request.kid is not the device signer key id');
  if (request.installer.kid !== toBase64Url(installer.keyId)) throw new RangeError('request.installer.kid is not the installer key id');
  const inner = await sign1(device, ENROLMENT_CONTENT_TYPE, encodeCbor(request));
  return sign1(installer, COUNTERSIGN_CONTENT_TYPE, inner);
}

const fail = (message: string, where?: Record<string, unknown>, cause?: unknown): never => {
  throw new ProvisionError('ENROLMENT_FORMAT_ERROR', message, { ...(where ? { where } : {}), ...(cause === undefined ? {} : { cause }) });
};

function openSign1(bytes: Uint8Array, contentType: string, what: string): { kid: Uint8Array; payload: Uint8Array; toBeSigned: Uint8Array; signature: Uint8Array } {
  let cose;
  try {
    cose = decodeSign1(bytes);
  } catch (cause) {
    return fail(`${what} is not a COSE_Sign1`, { what }, cause);
  }
  const h = cose.protectedHeader;
  if (h.get(HEADER_ALG) !== ALG_ES256) fail(`${what}: alg is not ES256`, { what });
  if (h.get(HEADER_CONTENT_TYPE) !== contentType) fail(`${what}: wrong content type`, { what, contentType: h.get(HEADER_CONTENT_TYPE) });
  const kid = h.get(HEADER_KID);
  if (!(kid instanceof Uint8Array) || kid.length !== 32) fail(`${what}: kid is not 32 bytes`, { what });
  if (cose.payload === null) fail(`${what}: detached payload`, { what });
  if (cose.signature.length !== 64) fail(`${what}: signature is not 64 bytes`, { what });
  return { kid: kid as Uint8Array, payload: cose.payload!, toBeSigned: sigStructure1(cose.protectedBytes, cose.payload!), signature: cose.signature };
}

/** CBOR maps come back as Maps (core decodeCbor): turn text-keyed ones into plain objects. */
function toPlain(value: unknown): unknown {
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) {
      if (typeof k !== 'string') fail('request has a non-text map key');
      out[k as string] = toPlain(v);
    }
    return out;
  }
  if (Array.isArray(value)) return value.map(toPlain);
  if (value instanceof Uint8Array) fail('request holds a byte string (all binary fields are base64url text)');
  return value;
}

function parsePoint(text: unknown, field: string): Uint8Array {
  if (typeof text !== 'string') return fail(`${field} is not text`, { field });
  let point: Uint8Array;
  try {
    point = fromBase64Url(text);
    keyIdOf(point);
  } catch (cause) {
    return fail(`${field} is not a P-256 public key`, { field }, cause);
  }
  return point;
}

/**
 * Checks a countersigned enrolment request from untrusted bytes: both COSE_Sign1, both signatures, kids that
 * match the keys, deterministic CBOR, the fields. Throws ProvisionError ENROLMENT_FORMAT_ERROR,
 * ENROLMENT_SIGNATURE_INVALID or ENROLMENT_COUNTERSIGNATURE_INVALID.
 */
export async function verifyEnrolmentRequest(fileBytes: Uint8Array): Promise<VerifiedEnrolment> {
  if (!(fileBytes instanceof Uint8Array)) throw new TypeError('fileBytes must be a Uint8Array');
  const outer = openSign1(fileBytes, COUNTERSIGN_CONTENT_TYPE, 'countersignature');
  const inner = openSign1(outer.payload, ENROLMENT_CONTENT_TYPE, 'device signature');
  let decoded: unknown;
  try {
    decoded = decodeCbor(inner.payload, { what: 'enrolment request' });
  } catch (cause) {
    return fail('request is not valid CBOR', {}, cause);
  }
  if (!isDeterministicCbor(inner.payload, decoded)) fail('request is not deterministic CBOR');
  const req = toPlain(decoded) as Record<string, unknown>;
  if (typeof req !== 'object' || req === null || Array.isArray(req)) fail('request is not a map');
  if (req.version !== ENROLMENT_REQUEST_VERSION) fail('unknown request version', { version: req.version });
  for (const field of ['deviceId', 'site', 'createdAt', 'keyBackend', 'kid'] as const) {
    if (typeof req[field] !== 'string') fail(`${field} is missing`, { field });
  }
  try {
    checkDeviceId(req.deviceId as string);
  } catch (cause) {
    fail('deviceId is not usable', { field: 'deviceId' }, cause);
  }
  if (!['software', 'pkcs11', 'tpm', 'secure-element'].includes(req.keyBackend as string)) fail('unknown keyBackend', { field: 'keyBackend' });
  if (!Array.isArray(req.instruments)) fail('instruments is not a list', { field: 'instruments' });
  const installer = req.installer as Record<string, unknown> | undefined;
  if (typeof installer !== 'object' || installer === null) return fail('installer is missing', { field: 'installer' });

  const devicePoint = parsePoint(req.publicKey, 'publicKey');
  const deviceKid = keyIdOf(devicePoint);
  if (req.kid !== toBase64Url(deviceKid) || toHex(inner.kid) !== toHex(deviceKid)) fail('device kid does not match its public key', { field: 'kid' });
  const installerPoint = parsePoint(installer.publicKey, 'installer.publicKey');
  const installerKid = keyIdOf(installerPoint);
  if (installer.kid !== toBase64Url(installerKid) || toHex(outer.kid) !== toHex(installerKid)) {
    fail('installer kid does not match its public key', { field: 'installer.kid' });
  }
  if (!(await verifyEs256(installerPoint, outer.toBeSigned, outer.signature))) {
    throw new ProvisionError('ENROLMENT_COUNTERSIGNATURE_INVALID', 'the installer countersignature does not verify', { where: { installerKid: toBase64Url(installerKid) } });
  }
  if (!(await verifyEs256(devicePoint, inner.toBeSigned, inner.signature))) {
    throw new ProvisionError('ENROLMENT_SIGNATURE_INVALID', 'the device signature does not verify', { where: { deviceId: req.deviceId } });
  }
  const request = req as unknown as EnrolmentRequest;
  return {
    request,
    record: {
      deviceId: request.deviceId,
      publicKey: request.publicKey,
      kid: request.kid,
      keyBackend: request.keyBackend,
      enrolledAt: request.createdAt,
      site: request.site,
    },
    installerKid: toBase64Url(installerKid),
    fileSha256: toHex(sha256(fileBytes)),
  };
}

/**
 * The short text for a QR code beside the file (~170 characters, well under a version 10 QR's 213 bytes at level M):
 * the officer compares it with the file that reaches ingest.
 */
export function enrolmentSummary(request: Pick<EnrolmentRequest, 'deviceId' | 'kid' | 'keyBackend' | 'site'>, fileBytes: Uint8Array): string {
  return [
    'STELE-ENROL/1',
    `device=${request.deviceId}`,
    `kid=${request.kid.slice(0, 16)}`,
    `backend=${request.keyBackend}`,
    `sha256=${toHex(sha256(fileBytes))}`,
  ].join('\n');
}
