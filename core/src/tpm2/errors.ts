import { SteleError } from '../errors.ts';

/**
 * Codes of TPM 2.0 key attestation checking (FORMAT.md §14.5):
 * - `ATTESTATION_FORMAT_ERROR`: a TPM structure (TPMS_ATTEST, TPMT_PUBLIC, TPMT_SIGNATURE) or a certificate does
 *   not parse, or is not of the kind required (not a certify statement, wrong magic, unsupported algorithm).
 * - `ATTESTATION_KEY_MISMATCH`: the certified object is not the device key (its name is not the hash of the
 *   TPMT_PUBLIC given, or that public area holds another point, or it is not a non-duplicable signing key).
 * - `ATTESTATION_SIGNATURE_ERROR`: the attestation key's signature over TPMS_ATTEST does not verify, the
 *   attestation key is not a restricted signing key, or the statement names another signer than that key under the EK.
 * - `ATTESTATION_EK_MISMATCH`: the EK certificate certifies another key than the endorsement key given.
 * - `ATTESTATION_CHAIN_ERROR`: a certificate of the chain is not signed by the next one, or an intermediate is not a CA.
 * - `ATTESTATION_UNTRUSTED_ROOT`: the chain does not end at any of the roots given (none pinned, or another CA).
 */
export type AttestationErrorCode =
  | 'ATTESTATION_FORMAT_ERROR'
  | 'ATTESTATION_KEY_MISMATCH'
  | 'ATTESTATION_SIGNATURE_ERROR'
  | 'ATTESTATION_EK_MISMATCH'
  | 'ATTESTATION_CHAIN_ERROR'
  | 'ATTESTATION_UNTRUSTED_ROOT';

export class AttestationError extends SteleError<AttestationErrorCode> {}
