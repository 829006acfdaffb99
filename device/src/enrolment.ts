import { toBase64Url } from '@stele/core/bytes.ts';
import type { KeyBackend, Signer } from '@stele/core/signer.ts';

/** What ingest needs to accept a device's statements (FORMAT.md §7 `device`). */
export interface EnrolmentRecord {
  deviceId: string;
  /** SEC1 uncompressed P-256 point, base64url. */
  publicKey: string;
  /** SHA-256 of the SEC1 point, base64url. */
  kid: string;
  keyBackend: KeyBackend;
  /** ISO 8601, when this record was made. */
  enrolledAt: string;
  site?: string;
}

/** The enrolment record of `signer` for `deviceId`. Device ids end up in MQTT topics: no `/`, `+`, `#`. */
export function makeEnrolmentRecord(signer: Signer, deviceId: string, site?: string, now: Date = new Date()): EnrolmentRecord {
  checkDeviceId(deviceId);
  if (site !== undefined && typeof site !== 'string') throw new TypeError('site must be a string');
  return {
    deviceId,
    publicKey: toBase64Url(signer.publicKey),
    kid: toBase64Url(signer.keyId),
    keyBackend: signer.backend,
    enrolledAt: now.toISOString(),
    ...(site === undefined ? {} : { site }),
  };
}

/** Throws `TypeError`/`RangeError` unless `deviceId` is a usable device id (1..128 chars, none of `/ + #`, no controls). */
export function checkDeviceId(deviceId: string): void {
  if (typeof deviceId !== 'string') throw new TypeError('deviceId must be a string');
  // eslint-disable-next-line no-control-regex
  if (deviceId.length === 0 || deviceId.length > 128 || /[/+#\u0000-\u001f\u007f]/.test(deviceId)) {
    throw new RangeError('deviceId must be 1..128 characters without "/", "+", "#" or control characters');
  }
}
