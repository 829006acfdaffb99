/**
 * The enrolment request a gateway writes at installation (issue #3): what the device is and which key it signs
 * with, signed by that key and countersigned by the installer's own key, so that it can travel on a USB stick.
 *
 * Bytes: a tagged COSE_Sign1 (RFC 9052 §4.2) by the installer, whose payload is a tagged COSE_Sign1 by the device
 * key, whose payload is the deterministic CBOR (RFC 8949 §4.2.1) of the request object below (text keys, text and
 * integer values only, so the same object reads as JSON). Protected headers: alg ES256 (-7), content type (3),
 * kid (4) = SHA-256 of the signer's SEC1 key (FORMAT.md §1).
 */
import { equalBytes, fromBase64Url, toBase64Url, toHex } from '../bytes.ts';
import { decodeCbor, encodeCbor, isDeterministicCbor } from '../cbor.ts';
import { ALG_ES256, HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID } from '../cose/labels.ts';
import { decodeSign1, encodeSign1, sigStructure1 } from '../cose/sign1.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { sha256 } from '../hash.ts';
import { keyIdOf } from '../keys.ts';
import type { KeyBackend, Signer } from '../signer.ts';
import { AttestationError } from '../tpm2/errors.ts';
import { checkTpm2Certify, TPM2_CERTIFY_KIND, type Tpm2CertifyAttestation } from '../tpm2/attestation.ts';
import { checkEnrolmentRecord, EnrolmentError, isIsoTime, KEY_BACKENDS, MAX_SITE_LENGTH, type EnrolmentRecord } from './record.ts';

/** What identifies the gateway hardware (device/src/provision/identity.ts reads it). */
export interface GatewayIdentity {
  hostname: string;
  /** Board serial: `Serial` of /proc/cpuinfo (Raspberry Pi and other ARM boards), else /etc/machine-id. */
  serial: { source: '/proc/cpuinfo' | '/etc/machine-id' | 'none'; value: string };
  /** Hardware addresses of the non-loopback interfaces, sorted by interface name. */
  macs: Array<{ iface: string; mac: string }>;
}

/** What attestation the key backend offered at provisioning. */
export type Attestation =
  | Tpm2CertifyAttestation
  | { kind: 'tpm-ek-certificate'; certificates: Array<{ nvIndex: string; der: string }>; note: string }
  | { kind: 'none'; reason: string };

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
  /** The record ingest stores for the device (record.ts). */
  record: EnrolmentRecord;
  /** Installer key id (base64url): who countersigned. */
  installerKid: string;
  /** Installer public key (base64url SEC1). */
  installerPublicKey: string;
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
  throw new EnrolmentError('ENROLMENT_FORMAT_ERROR', message, { ...(where ? { where } : {}), ...(cause === undefined ? {} : { cause }) });
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

/** Largest enrolment request file: a request with EK certificates is a few KiB. */
export const MAX_ENROLMENT_FILE_BYTES = 64 * 1024;
/** Bounds on the request's lists (work done on an untrusted file stays small). */
const MAX_INSTRUMENTS = 256;
const MAX_CERTIFICATES = 16;
const MAX_CERTIFICATE_BYTES = 8 * 1024;

/** Whom the operator trusts to countersign enrolments. */
export interface EnrolmentPolicy {
  /**
   * SEC1 public keys of the installers whose countersignature is accepted. An installer outside the list is
   * ENROLMENT_INSTALLER_UNTRUSTED. Omit only where trust is decided elsewhere (the provisioning tool's own check).
   */
  trustedInstallers?: readonly Uint8Array[];
}

async function checkAttestation(a: unknown, backend: KeyBackend, devicePoint: Uint8Array): Promise<void> {
  const at = (message: string): never => {
    throw new EnrolmentError('ENROLMENT_ATTESTATION_INVALID', `attestation: ${message}`, { where: { field: 'attestation' } });
  };
  if (typeof a !== 'object' || a === null || Array.isArray(a)) return at('is not a map');
  const o = a as Record<string, unknown>;
  if (o.kind === TPM2_CERTIFY_KIND) {
    // Everything but the root: that the key is certified by a TPM-resident AK under the EK its certificate names
    // (core/src/tpm2). Whether that certificate chains to a pinned root is the verifier's question (trust policy).
    if (backend !== 'tpm') at('a TPM2_Certify attestation comes with keyBackend "tpm" only');
    try {
      await checkTpm2Certify(o, devicePoint);
    } catch (cause) {
      if (!(cause instanceof AttestationError)) throw cause;
      throw new EnrolmentError('ENROLMENT_ATTESTATION_INVALID', `attestation: ${cause.message}`, { cause, where: { field: 'attestation', code: cause.code, ...cause.where } });
    }
    return;
  }
  if (o.kind === 'none') {
    if (typeof o.reason !== 'string' || o.reason.length > 512) at('"none" needs a reason (text)');
    return;
  }
  if (o.kind === 'tpm-ek-certificate') {
    // The EK certificate shows a TPM is present; it does not bind the signing key to it (docs/keys.md), so the
    // backend stays declared. It must at least be a TPM enrolment and well-formed.
    if (backend !== 'tpm') at('a TPM EK certificate comes with keyBackend "tpm" only');
    const certs = o.certificates;
    if (!Array.isArray(certs) || certs.length === 0 || certs.length > MAX_CERTIFICATES) at(`certificates must list 1..${MAX_CERTIFICATES}`);
    for (const c of certs as unknown[]) {
      const cert = c as Record<string, unknown>;
      if (typeof cert !== 'object' || cert === null || typeof cert.nvIndex !== 'string' || !/^0x0?1c[0-9a-f]{5}$/i.test(cert.nvIndex)) at('nvIndex is not a TCG EK NV index');
      let der: Uint8Array | undefined;
      try {
        der = typeof cert.der === 'string' ? fromBase64Url(cert.der) : undefined;
      } catch {
        der = undefined;
      }
      // An X.509 certificate is a DER SEQUENCE (0x30).
      if (der === undefined || der.length < 64 || der.length > MAX_CERTIFICATE_BYTES || der[0] !== 0x30) at('der is not a DER certificate');
    }
    return;
  }
  at('kind is not "none", "tpm-ek-certificate" or "tpm2-certify"');
}

/**
 * Checks a countersigned enrolment request from untrusted bytes: size, both COSE_Sign1, the installer's
 * countersignature and the device's signature (proof of possession of the key), kids that match the keys,
 * deterministic CBOR, every field (the record part through {@link checkEnrolmentRecord}), the attestation, and,
 * when the policy names them, that the installer is trusted. Throws EnrolmentError ENROLMENT_FORMAT_ERROR,
 * ENROLMENT_SIGNATURE_INVALID, ENROLMENT_COUNTERSIGNATURE_INVALID, ENROLMENT_ATTESTATION_INVALID or
 * ENROLMENT_INSTALLER_UNTRUSTED.
 */
export async function verifyEnrolmentRequest(fileBytes: Uint8Array, policy: EnrolmentPolicy = {}): Promise<VerifiedEnrolment> {
  if (!(fileBytes instanceof Uint8Array)) throw new TypeError('fileBytes must be a Uint8Array');
  if (fileBytes.length > MAX_ENROLMENT_FILE_BYTES) fail(`the file is larger than ${MAX_ENROLMENT_FILE_BYTES} bytes`, { size: fileBytes.length });
  if (fileBytes.length > 0 && (fileBytes[0] === 0x7b || fileBytes[0] === 0x20 || fileBytes[0] === 0x0a)) {
    fail('this is JSON (the readable copy, not signed): give the .enrol.cose file', { field: 'file' });
  }
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
  if ((req.site as string).length === 0 || (req.site as string).length > MAX_SITE_LENGTH) fail(`site must be 1..${MAX_SITE_LENGTH} characters`, { field: 'site' });
  if (!isIsoTime(req.createdAt)) fail('createdAt is not an ISO 8601 date-time with offset', { field: 'createdAt' });
  if (!(KEY_BACKENDS as readonly unknown[]).includes(req.keyBackend)) fail('unknown keyBackend', { field: 'keyBackend' });
  if (!Array.isArray(req.instruments) || req.instruments.length > MAX_INSTRUMENTS) fail(`instruments is not a list of at most ${MAX_INSTRUMENTS}`, { field: 'instruments' });
  for (const i of req.instruments as unknown[]) {
    if (typeof i !== 'object' || i === null || typeof (i as { id?: unknown }).id !== 'string') fail('every instrument needs an id', { field: 'instruments' });
  }
  if (typeof req.keyStore !== 'object' || req.keyStore === null || Array.isArray(req.keyStore)) fail('keyStore is not a map', { field: 'keyStore' });
  const gw = req.gateway as Record<string, unknown> | undefined;
  if (typeof gw !== 'object' || gw === null || typeof gw.hostname !== 'string' || !Array.isArray(gw.macs)) fail('gateway identity is missing', { field: 'gateway' });
  const installer = req.installer as Record<string, unknown> | undefined;
  if (typeof installer !== 'object' || installer === null) return fail('installer is missing', { field: 'installer' });
  if (installer.name !== undefined && (typeof installer.name !== 'string' || installer.name.length > 256)) fail('installer.name is not text', { field: 'installer.name' });

  // The record part: the same check as a record given on its own.
  const { record, publicKey: devicePoint, kid: deviceKid } = checkEnrolmentRecord({
    deviceId: req.deviceId,
    publicKey: req.publicKey,
    kid: req.kid,
    keyBackend: req.keyBackend,
    enrolledAt: req.createdAt,
    site: req.site,
  });
  if (!equalBytes(inner.kid, deviceKid)) fail('device kid does not match its public key', { field: 'kid' });
  const installerPoint = parsePoint(installer.publicKey, 'installer.publicKey');
  const installerKid = keyIdOf(installerPoint);
  if (installer.kid !== toBase64Url(installerKid) || toHex(outer.kid) !== toHex(installerKid)) {
    fail('installer kid does not match its public key', { field: 'installer.kid' });
  }
  if (!(await verifyEs256(installerPoint, outer.toBeSigned, outer.signature))) {
    throw new EnrolmentError('ENROLMENT_COUNTERSIGNATURE_INVALID', 'the installer countersignature does not verify', { where: { installerKid: toBase64Url(installerKid) } });
  }
  if (!(await verifyEs256(devicePoint, inner.toBeSigned, inner.signature))) {
    throw new EnrolmentError('ENROLMENT_SIGNATURE_INVALID', 'the device signature does not verify', { where: { deviceId: req.deviceId } });
  }
  await checkAttestation(req.attestation, record.keyBackend, devicePoint);
  if (policy.trustedInstallers !== undefined && !policy.trustedInstallers.some((k) => k instanceof Uint8Array && equalBytes(k, installerPoint))) {
    throw new EnrolmentError('ENROLMENT_INSTALLER_UNTRUSTED', 'the installer who countersigned is not in the trusted installer keys', {
      where: { installerKid: toBase64Url(installerKid), deviceId: record.deviceId },
    });
  }
  const request = req as unknown as EnrolmentRequest;
  return { request, record, installerKid: toBase64Url(installerKid), installerPublicKey: toBase64Url(installerPoint), fileSha256: toHex(sha256(fileBytes)) };
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
