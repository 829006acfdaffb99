/** TPM 2.0 key attestation (FORMAT.md §14.5): TPM2_Certify evidence, its structures and the EK certificate chain. */
export { AttestationError, type AttestationErrorCode } from './errors.ts';
export {
  chainToRoot,
  checkTpm2Certify,
  MAX_INTERMEDIATES,
  TPM2_CERTIFY_KIND,
  verifyTpm2Certify,
  type CheckedTpm2Certify,
  type Tpm2CertifyAttestation,
} from './attestation.ts';
export { nameOf, parseCertifyAttest, parseEcdsaSignature, parsePublic, qualifiedNameUnderEndorsement, unwrapTpm2bPublic, type CertifyAttest, type TpmPublic } from './structures.ts';
export { parseCertificate, verifyCertificateSignature, type Certificate } from './x509.ts';
