import { toBase64Url } from '@stele/core';
import { checkDeviceId, type EnrolmentRecord } from '@stele/core/enrolment';
import type { Signer } from '@stele/core';

// The record and its checks live in core (core/src/enrolment/record.ts): one check for the CLI, ingest and the verifier.
export { checkDeviceId, type EnrolmentRecord };

/** The enrolment record of `signer` for `deviceId` (tests and the demo; installers use `stele gateway provision`). */
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
