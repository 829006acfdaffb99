export { KeyError, type KeyErrorCode } from './errors.ts';
export { SoftwareSigner, createSoftwareKey, loadSoftwareSigner, loadOrCreateSoftwareSigner, type LoadKeyOptions } from './software-signer.ts';
export { makeEnrolmentRecord, checkDeviceId, type EnrolmentRecord } from './enrolment.ts';
export { Pkcs11Signer, type Pkcs11SignerConfig, type Pkcs11SignerOptions, type Pkcs11Backend, type KeyProtection, type TokenDescription } from './pkcs11/signer.ts';
export { TokenError, PKCS11JS_INSTALL_HINT, type TokenErrorCode } from './pkcs11/errors.ts';
export { loadBinding, type BindingLoader, type Pkcs11Binding } from './pkcs11/binding.ts';
export { readPin, checkPinSource, type PinSource } from './pkcs11/pin.ts';
export { provisionGateway, type ProvisionOptions, type ProvisionResult, type ProvisionBackend } from './provision/provision.ts';
export {
  verifyEnrolmentRequest,
  signEnrolmentRequest,
  enrolmentSummary,
  ENROLMENT_CONTENT_TYPE,
  COUNTERSIGN_CONTENT_TYPE,
  ENROLMENT_REQUEST_VERSION,
  type EnrolmentRequest,
  type VerifiedEnrolment,
  type InstrumentEntry,
} from './provision/request.ts';
export { readGatewayIdentity, readTpmAttestation, type GatewayIdentity, type Attestation } from './provision/identity.ts';
export { ProvisionError, type ProvisionErrorCode } from './provision/errors.ts';
export { runGatewayProvision, PROVISION_USAGE, type ProvisionIo } from './provision/cli.ts';
export { certifyTpmKey } from './provision/tpm-certify.ts';
