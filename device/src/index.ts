export { KeyError, type KeyErrorCode } from './errors.ts';
export { SoftwareSigner, createSoftwareKey, loadSoftwareSigner, loadOrCreateSoftwareSigner, type LoadKeyOptions } from './software-signer.ts';
export { makeEnrolmentRecord, checkDeviceId, type EnrolmentRecord } from './enrolment.ts';
