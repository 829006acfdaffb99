/**
 * The enrolment request a gateway writes at installation: signed by the device key and countersigned by the
 * installer. Its bytes and its one check live in core (core/src/enrolment/request.ts), so that ingest, the CLI
 * and the verifier check it the same way; this module re-exports them for the provisioning code.
 */
export {
  COUNTERSIGN_CONTENT_TYPE,
  ENROLMENT_CONTENT_TYPE,
  ENROLMENT_REQUEST_VERSION,
  enrolmentSummary,
  MAX_ENROLMENT_FILE_BYTES,
  signEnrolmentRequest,
  verifyEnrolmentRequest,
  type EnrolmentPolicy,
  type EnrolmentRequest,
  type InstrumentEntry,
  type VerifiedEnrolment,
} from '@stele/core/enrolment';
