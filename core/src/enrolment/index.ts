/** Enrolment (FORMAT.md §7 `device`, docs/keys.md): the record and the countersigned request, checked in one place. */
export {
  checkDeviceId,
  checkEnrolmentRecord,
  EnrolmentError,
  isIsoTime,
  KEY_BACKENDS,
  MAX_DEVICE_ID_LENGTH,
  MAX_SITE_LENGTH,
  type CheckedRecord,
  type EnrolmentErrorCode,
  type EnrolmentRecord,
} from './record.ts';
export {
  COUNTERSIGN_CONTENT_TYPE,
  ENROLMENT_CONTENT_TYPE,
  ENROLMENT_REQUEST_VERSION,
  enrolmentSummary,
  MAX_ENROLMENT_FILE_BYTES,
  signEnrolmentRequest,
  verifyEnrolmentRequest,
  type Attestation,
  type EnrolmentPolicy,
  type EnrolmentRequest,
  type GatewayIdentity,
  type InstrumentEntry,
  type VerifiedEnrolment,
} from './request.ts';
