import { SteleError } from '@stele/core';

/**
 * Codes of provisioning and of enrolment-request checking.
 * - `ENROLMENT_FORMAT_ERROR`: the file is not a countersigned enrolment request (CBOR, COSE or field checks).
 * - `ENROLMENT_SIGNATURE_INVALID`: the device key's signature does not verify.
 * - `ENROLMENT_COUNTERSIGNATURE_INVALID`: the installer's countersignature does not verify.
 * - `PROVISION_OUTPUT_EXISTS`: refusing to overwrite an enrolment request already in the output folder.
 * - `PROVISION_IO`: the output could not be written (cause attached).
 */
export type ProvisionErrorCode =
  | 'ENROLMENT_FORMAT_ERROR'
  | 'ENROLMENT_SIGNATURE_INVALID'
  | 'ENROLMENT_COUNTERSIGNATURE_INVALID'
  | 'PROVISION_OUTPUT_EXISTS'
  | 'PROVISION_IO';

export class ProvisionError extends SteleError<ProvisionErrorCode> {}
