/**
 * The public surface of @stele/core (issue 10 item 1): every name each entry point in package.json `exports`
 * offers, values and types. An export added or removed fails here until SURFACE says so: a change to the API is a
 * deliberate edit to this list, not a side effect of moving a file. Entry points and their run-time exports are
 * loaded too, so an entry that does not load (or exports at run time what TypeScript calls a type) fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { surfaceOf, type EntrySurface } from '@stele/testkit/surface';

const SURFACE: Record<string, string[]> = {
  '.': [
    'ALERTS_TOPIC', 'ALG_ES256', 'ALG_SHA256', 'ANCHORED_EVENT_TOPIC', 'Aggregate', 'Alert', 'AlertCheckFailure',
    'AlertCheckResult', 'AlertError', 'AlertErrorCode', 'AlertSetMember', 'AlertWindow', 'AnchorError',
    'AnchorErrorCode', 'AnchorFacts', 'AnchorReader', 'AnchorRef', 'AnchorSummary', 'Attestation', 'AttestationError',
    'AttestationErrorCode', 'AttestationRoot', 'BUNDLE_FORMAT', 'BUNDLE_FORMAT_V2', 'BatchPosition', 'BatchProofs',
    'BundleBatch', 'BundleCaught', 'BundleDevice', 'BundleEntry', 'BundleFormOptions', 'BundleFormat', 'BundleIngest',
    'BundleLifecycleEntry', 'CONFIRMATION_CONTENT_TYPE', 'CONFIRMATION_MAX_BYTES', 'CORRECTED_DECIMALS',
    'COSE_SIGN1_TAG', 'COUNTERSIGN_CONTENT_TYPE', 'CUSTODY_AT_RE', 'CUSTODY_FIELDS', 'CUSTODY_KIND', 'CUSTODY_STEPS',
    'CWT_IAT', 'CWT_ISS', 'CWT_SUB', 'Certificate', 'CertifyAttest', 'ChainLink', 'ChainLinkFrom', 'ChainLinkTo',
    'Check', 'CheckId', 'CheckStatus', 'CheckedRecord', 'CheckedTpm2Certify', 'ClockState', 'CoalLabParams',
    'ColdChainParams', 'CompleteOptions', 'ConfirmationBody', 'ConfirmationError', 'ConfirmationErrorCode',
    'ConfirmationType', 'CoseSign1', 'CustodyChainEvent', 'CustodyEvent', 'CustodyInput', 'CustodyIssue',
    'CustodyIssueCode', 'CustodyLink', 'CustodyParams', 'CustodyResult', 'CustodyStep', 'DEFAULT_CHAIN_DEADLINE_MS',
    'DEFAULT_READ_TIMEOUT_MS', 'DEFAULT_TIME_TOLERANCE_S', 'DEFAULT_UTC_OFFSET', 'DIGEST_LENGTH', 'DraftInput',
    'ENROLMENT_CONTENT_TYPE', 'ENROLMENT_REQUEST_VERSION', 'ES256_SIGNATURE_LENGTH', 'EVIDENCE_SET_FORMAT',
    'EmissionParams', 'EnrolmentBody', 'EnrolmentError', 'EnrolmentErrorCode', 'EnrolmentPolicy', 'EnrolmentRecord',
    'EnrolmentRequest', 'EvalOptions', 'EvalReading', 'EvalResult', 'EvidenceBundle', 'EvidenceSet',
    'EvmAnchorTarget', 'FAIL', 'Failure', 'FormatError', 'FormatErrorCode', 'FrameMatch', 'FrameQueryResult',
    'GATEWAY_CLIENT_ID_PREFIX', 'GENESIS_PREV', 'GatewayIdentity', 'HASH_SIZE', 'HEADER_ALG', 'HEADER_CONTENT_TYPE',
    'HEADER_CWT_CLAIMS', 'HEADER_KID', 'HEADER_PAYLOAD_HASH_ALG', 'HEADER_PREIMAGE_CONTENT_TYPE',
    'HEADER_STELE_BATCH_ID', 'HEADER_STELE_BATCH_SIZE', 'HEADER_STELE_PREV', 'HEADER_STELE_SEQ', 'HEADER_VDP',
    'HEADER_VDS', 'HEADLINE', 'InclusionProof', 'IngestKeyEntry', 'InstallerKeyEntry', 'InstrumentEntry',
    'IntegrityParams', 'InvalidPeriod', 'JsonValue', 'KELVIN_OFFSET', 'KEY_BACKENDS', 'KEY_ID_LENGTH', 'KeyBackend',
    'KeySpan', 'KeyState', 'KeyStatus', 'KeySummary', 'KeyTimeline', 'LEAF_PREFIX', 'LIFECYCLE_CONTENT_TYPE',
    'LIFECYCLE_VERSION', 'LifecycleBody', 'LifecycleType', 'LoadTrustPolicyOptions', 'LogFn', 'LogLevel', 'Logger',
    'MAX_BUNDLE_BATCHES', 'MAX_BUNDLE_BYTES', 'MAX_BUNDLE_CAUGHT', 'MAX_BUNDLE_DEVICE_BATCHES', 'MAX_BUNDLE_ENTRIES',
    'MAX_BUNDLE_LIFECYCLE', 'MAX_BUNDLE_NODES', 'MAX_DECIMAL_TEXT', 'MAX_DEVICE_ID_LENGTH',
    'MAX_ENROLMENT_FILE_BYTES', 'MAX_INTERMEDIATES', 'MAX_POLICY_BYTES', 'MAX_POLICY_ENDPOINTS', 'MAX_POLICY_ENTRIES',
    'MAX_READING_LINE', 'MAX_READING_LINES', 'MAX_SET_BUNDLES', 'MAX_SITE_LENGTH', 'MKT_DELTA_H_OVER_R',
    'MKT_SCALE_DIGITS', 'Measurement', 'MemberSummary', 'MerkleError', 'MerkleErrorCode', 'MerkleTree', 'NODE_PREFIX',
    'NOTE', 'Note', 'ONE', 'OPEN_CODES', 'OpenCode', 'P256_PUBLIC_KEY_LENGTH', 'PASS', 'ParseBundleOptions',
    'ParsedConfirmation', 'ParsedLifecycle', 'ParsedReceipt', 'ParsedStatement', 'PinoLike', 'PolicyDraft',
    'PolicyEndpoint', 'PolicyKey', 'PollutantLimit', 'READING_CONTENT_TYPE', 'READING_VERSION',
    'REJECT_CODE_MAX_BYTES', 'REJECT_MAX_BYTES', 'RTYPE_PATTERN', 'Rational', 'Reading', 'ReadingRef',
    'ReceiptClaims', 'ReinstallBody', 'RejectMessage', 'RepeatabilityTier', 'RevocationBody', 'RotationBody', 'Rule',
    'RuleBase', 'RuleSet', 'RuleType', 'STATEMENT_MESSAGE_MAX_BYTES', 'SignatureBatchVerifier', 'SignatureJob',
    'Signer', 'SkippedEntry', 'StatementBatch', 'StatementHeaderFields', 'StatementMessage', 'SteleError',
    'StrictJsonLimits', 'Summary', 'TITLES', 'TOPIC_KINDS', 'TOPIC_PREFIX', 'TPM2_CERTIFY_KIND',
    'TRUST_POLICY_CONTENT_TYPE', 'TRUST_POLICY_FORMAT', 'Tagged', 'Text', 'TimelineProblem', 'TimelineProblemReason',
    'TopicKind', 'Tpm2CertifyAttestation', 'TpmPublic', 'TrustPolicy', 'TrustPolicyError', 'TrustPolicyErrorCode',
    'TrustSummary', 'VDP_INCLUSION_PROOFS', 'VDS_RFC9162_SHA256', 'VERIFY_CODES', 'Verdict', 'VerdictState',
    'VerifiedEnrolment', 'VerifyCode', 'VerifyOptions', 'WireError', 'WireErrorCode', 'ZERO', 'add', 'alertId',
    'assertP256PublicKey', 'basisTimeMs', 'buildKeyTimeline', 'bundleDigest', 'bundleDigestAsync', 'bundleToJson',
    'chainToRoot', 'checkAlert', 'checkConfirmation', 'checkCustody', 'checkCustodyEvents', 'checkDeviceId',
    'checkEnrolmentRecord', 'checkStatementAgainstReading', 'checkTpm2Certify', 'cmp', 'completePolicyDraft',
    'concatBytes', 'consistencyProof', 'decimal', 'decodeCbor', 'decodeCborChecked', 'decodeLifecycleBody',
    'decodeReading', 'decodeReject', 'decodeSign1', 'decodeStatementMessage', 'deviceTopic', 'div',
    'draftTrustPolicy', 'encodeBundle', 'encodeCbor', 'encodeDeterministic', 'encodeLifecycleBody',
    'encodeLifecycleProtectedHeader', 'encodeReading', 'encodeReceipt', 'encodeReceiptProtectedHeader',
    'encodeReject', 'encodeSign1', 'encodeStatementMessage', 'encodeStatementProtectedHeader', 'enrolmentSummary',
    'equalBytes', 'evalReading', 'evaluateRule', 'evaluateRuleSet', 'everyDeviceFilter', 'evidenceSetToJson',
    'extendsChain', 'findFrameInBundle', 'findSpan', 'formatDecimal', 'formatErrorVerdict', 'formatFingerprint',
    'formatTime', 'fromBase64Url', 'fromHex', 'fromInt', 'fromUtf8', 'gatewayClientId', 'hashChildren', 'hashEmpty',
    'hashLeaf', 'inclusionProof', 'isChainedType', 'isDeterministicCbor', 'isEvidenceSetJson', 'isInstrumentTime',
    'isIsoTime', 'isLifecycleStatement', 'isSteleError', 'isStructuredAlert', 'isZero', 'jsonLineLogger',
    'judgeBundleAlert', 'judgeSetAlert', 'keyIdOf', 'keyStatusAt', 'keyValidAt', 'loadTrustPolicy',
    'meanKineticTemperature', 'mul', 'mulberry32', 'nameOf', 'parseBundle', 'parseBundleBytes', 'parseCertificate',
    'parseCertifyAttest', 'parseConfirmation', 'parseDecimal', 'parseDeviceTopic', 'parseEcdsaSignature',
    'parseEvidenceSet', 'parseFingerprint', 'parseLifecycleStatement', 'parsePolicyPayload', 'parsePublic',
    'parseReadingLine', 'parseReadingLines', 'parseReceipt', 'parseRule', 'parseRuleSet', 'parseStatement',
    'parseStrictJson', 'policyPayloadOf', 'prepareEs256Key', 'qualifiedNameUnderEndorsement', 'rational',
    'readAnchor', 'readEvidenceJson', 'readingDigest', 'readingJsonView', 'rootFromInclusionProof',
    'rootFromLeafHashes', 'roundHalfEven', 'sha256', 'shortHex', 'sigStructure1', 'signBatchRoot',
    'signBatchedStatements', 'signConfirmation', 'signEnrolmentRequest', 'signLifecycleStatement', 'signStatement',
    'signTrustPolicy', 'sleep', 'sub', 'sum', 'toBase64Url', 'toHex', 'toLogFn', 'unwrapTpm2bPublic', 'utf8',
    'verifyBundle', 'verifyBundleBytes', 'verifyCertificateSignature', 'verifyConsistency', 'verifyEnrolmentRequest',
    'verifyEs256', 'verifyEs256Noble', 'verifyEs256WebCrypto', 'verifyEvidenceSet', 'verifyInclusion',
    'verifyLifecycleSignature', 'verifyReceipt', 'verifySignatureBatch', 'verifyStatementSignature',
    'verifyTpm2Certify',
  ],
  './verify': [
    'AlertSetMember', 'AnchorReader', 'AnchorSummary', 'Check', 'CheckId', 'CheckStatus', 'DEFAULT_CHAIN_DEADLINE_MS',
    'DEFAULT_TIME_TOLERANCE_S', 'FAIL', 'Failure', 'FrameMatch', 'FrameQueryResult', 'HEADLINE', 'KeySummary',
    'MemberSummary', 'NOTE', 'Note', 'OPEN_CODES', 'OpenCode', 'PASS', 'SignatureBatchVerifier', 'SignatureJob',
    'Summary', 'TITLES', 'Text', 'TrustSummary', 'VERIFY_CODES', 'Verdict', 'VerdictState', 'VerifyCode',
    'VerifyOptions', 'basisTimeMs', 'findFrameInBundle', 'formatErrorVerdict', 'formatTime', 'judgeBundleAlert',
    'judgeSetAlert', 'shortHex', 'verifyBundle', 'verifyBundleBytes', 'verifyEvidenceSet', 'verifySignatureBatch',
  ],
  './cose': [
    'ALG_ES256', 'ALG_SHA256', 'CONFIRMATION_CONTENT_TYPE', 'CONFIRMATION_MAX_BYTES', 'COSE_SIGN1_TAG', 'CWT_IAT',
    'CWT_ISS', 'CWT_SUB', 'ConfirmationBody', 'ConfirmationError', 'ConfirmationErrorCode', 'ConfirmationType',
    'CoseSign1', 'HEADER_ALG', 'HEADER_CONTENT_TYPE', 'HEADER_CWT_CLAIMS', 'HEADER_KID', 'HEADER_PAYLOAD_HASH_ALG',
    'HEADER_PREIMAGE_CONTENT_TYPE', 'HEADER_STELE_BATCH_ID', 'HEADER_STELE_BATCH_SIZE', 'HEADER_STELE_PREV',
    'HEADER_STELE_SEQ', 'HEADER_VDP', 'HEADER_VDS', 'InclusionProof', 'ParsedConfirmation', 'ParsedReceipt',
    'ParsedStatement', 'READING_CONTENT_TYPE', 'ReceiptClaims', 'StatementBatch', 'StatementHeaderFields',
    'VDP_INCLUSION_PROOFS', 'VDS_RFC9162_SHA256', 'checkConfirmation', 'checkStatementAgainstReading', 'decodeSign1',
    'encodeDeterministic', 'encodeReceipt', 'encodeReceiptProtectedHeader', 'encodeSign1',
    'encodeStatementProtectedHeader', 'parseConfirmation', 'parseReceipt', 'parseStatement', 'sigStructure1',
    'signBatchRoot', 'signBatchedStatements', 'signConfirmation', 'signStatement', 'verifyReceipt',
    'verifyStatementSignature',
  ],
  './rfc9162': [
    'BatchProofs', 'HASH_SIZE', 'LEAF_PREFIX', 'MerkleError', 'MerkleErrorCode', 'MerkleTree', 'NODE_PREFIX',
    'consistencyProof', 'hashChildren', 'hashEmpty', 'hashLeaf', 'inclusionProof', 'rootFromInclusionProof',
    'rootFromLeafHashes', 'verifyConsistency', 'verifyInclusion',
  ],
  './enrolment': [
    'Attestation', 'COUNTERSIGN_CONTENT_TYPE', 'CheckedRecord', 'ENROLMENT_CONTENT_TYPE', 'ENROLMENT_REQUEST_VERSION',
    'EnrolmentError', 'EnrolmentErrorCode', 'EnrolmentPolicy', 'EnrolmentRecord', 'EnrolmentRequest',
    'GatewayIdentity', 'InstrumentEntry', 'KEY_BACKENDS', 'MAX_DEVICE_ID_LENGTH', 'MAX_ENROLMENT_FILE_BYTES',
    'MAX_SITE_LENGTH', 'VerifiedEnrolment', 'checkDeviceId', 'checkEnrolmentRecord', 'enrolmentSummary', 'isIsoTime',
    'signEnrolmentRequest', 'verifyEnrolmentRequest',
  ],
  './anchor': [
    'ANCHORED_EVENT_TOPIC', 'AnchorError', 'AnchorErrorCode', 'AnchorFacts', 'AnchorRef', 'DEFAULT_READ_TIMEOUT_MS',
    'readAnchor',
  ],
  './lifecycle': [
    'ChainLink', 'EnrolmentBody', 'KeySpan', 'KeyStatus', 'KeyTimeline', 'LIFECYCLE_CONTENT_TYPE',
    'LIFECYCLE_VERSION', 'LifecycleBody', 'LifecycleType', 'ParsedLifecycle', 'ReinstallBody', 'RevocationBody',
    'RotationBody', 'TimelineProblem', 'TimelineProblemReason', 'buildKeyTimeline', 'decodeLifecycleBody',
    'encodeLifecycleBody', 'encodeLifecycleProtectedHeader', 'findSpan', 'isChainedType', 'isLifecycleStatement',
    'keyStatusAt', 'parseLifecycleStatement', 'signLifecycleStatement', 'verifyLifecycleSignature',
  ],
  './trust': [
    'AttestationRoot', 'CompleteOptions', 'DraftInput', 'EvmAnchorTarget', 'IngestKeyEntry', 'InstallerKeyEntry',
    'JsonValue', 'KeyState', 'LoadTrustPolicyOptions', 'MAX_POLICY_BYTES', 'MAX_POLICY_ENDPOINTS',
    'MAX_POLICY_ENTRIES', 'PolicyDraft', 'PolicyEndpoint', 'PolicyKey', 'SkippedEntry', 'StrictJsonLimits',
    'TRUST_POLICY_CONTENT_TYPE', 'TRUST_POLICY_FORMAT', 'TrustPolicy', 'TrustPolicyError', 'TrustPolicyErrorCode',
    'completePolicyDraft', 'draftTrustPolicy', 'formatFingerprint', 'keyValidAt', 'loadTrustPolicy',
    'parseFingerprint', 'parsePolicyPayload', 'parseStrictJson', 'policyPayloadOf', 'signTrustPolicy',
  ],
  './alerts': [
    'Aggregate', 'Alert', 'AlertCheckFailure', 'AlertCheckResult', 'AlertError', 'AlertErrorCode', 'AlertWindow',
    'CORRECTED_DECIMALS', 'CUSTODY_AT_RE', 'CUSTODY_FIELDS', 'CUSTODY_KIND', 'CUSTODY_STEPS', 'CoalLabParams',
    'ColdChainParams', 'CustodyChainEvent', 'CustodyEvent', 'CustodyInput', 'CustodyIssue', 'CustodyIssueCode',
    'CustodyLink', 'CustodyParams', 'CustodyResult', 'CustodyStep', 'DEFAULT_UTC_OFFSET', 'EmissionParams',
    'EvalOptions', 'EvalReading', 'EvalResult', 'IntegrityParams', 'InvalidPeriod', 'KELVIN_OFFSET',
    'MAX_DECIMAL_TEXT', 'MAX_READING_LINE', 'MAX_READING_LINES', 'MKT_DELTA_H_OVER_R', 'MKT_SCALE_DIGITS', 'ONE',
    'PollutantLimit', 'Rational', 'ReadingRef', 'RepeatabilityTier', 'Rule', 'RuleBase', 'RuleSet', 'RuleType',
    'ZERO', 'add', 'alertId', 'checkAlert', 'checkCustody', 'checkCustodyEvents', 'cmp', 'decimal', 'div',
    'evalReading', 'evaluateRule', 'evaluateRuleSet', 'formatDecimal', 'fromInt', 'isStructuredAlert', 'isZero',
    'meanKineticTemperature', 'mul', 'parseDecimal', 'parseReadingLine', 'parseReadingLines', 'parseRule',
    'parseRuleSet', 'rational', 'readingJsonView', 'roundHalfEven', 'sub', 'sum',
  ],
  './testing': [
    'MIN', 'T0', 'TEST_CONTRACT', 'TestBundle', 'TestBundleOptions', 'TestPolicyOptions', 'answerJsonRpc',
    'buildTestBundle', 'buildTestPolicy', 'chain', 'chainReader', 'cloneBundle', 'createTestSigner', 'digestOf',
    'flipByte', 'itimeAt', 'minuteRecord', 'policyFileTrustingBundle', 'policyTrustingBundle', 'sampleReading',
    'tamper', 'tempSample', 'testSigner', 'toHighS', 'unreachableReader',
  ],
  './wire': [
    'ALERTS_TOPIC', 'GATEWAY_CLIENT_ID_PREFIX', 'REJECT_CODE_MAX_BYTES', 'REJECT_MAX_BYTES', 'RejectMessage',
    'STATEMENT_MESSAGE_MAX_BYTES', 'StatementMessage', 'TOPIC_KINDS', 'TOPIC_PREFIX', 'TopicKind', 'WireError',
    'WireErrorCode', 'decodeReject', 'decodeStatementMessage', 'deviceTopic', 'encodeReject', 'encodeStatementMessage',
    'everyDeviceFilter', 'gatewayClientId', 'parseDeviceTopic',
  ],
};

const LOAD: Record<string, () => Promise<Record<string, unknown>>> = {
  '.': () => import('@stele/core'),
  './verify': () => import('@stele/core/verify'),
  './cose': () => import('@stele/core/cose'),
  './rfc9162': () => import('@stele/core/rfc9162'),
  './enrolment': () => import('@stele/core/enrolment'),
  './anchor': () => import('@stele/core/anchor'),
  './lifecycle': () => import('@stele/core/lifecycle'),
  './trust': () => import('@stele/core/trust'),
  './alerts': () => import('@stele/core/alerts'),
  './testing': () => import('@stele/core/testing'),
  './wire': () => import('@stele/core/wire'),
};

describe('the public surface of @stele/core', () => {
  let surface: Record<string, EntrySurface>;
  beforeAll(() => {
    surface = surfaceOf(new URL('../package.json', import.meta.url));
  }, 120_000); // the TypeScript program of the package: seconds, more on a loaded 2-core machine

  it('exports exactly the pinned names from each entry point', () => {
    expect(Object.fromEntries(Object.entries(surface).map(([key, s]) => [key, s.names]))).toEqual(SURFACE);
  });

  it.each(Object.keys(LOAD))('entry point %s loads, with the pinned values at run time', async (key) => {
    const mod = await LOAD[key]!();
    expect(Object.keys(mod).sort()).toEqual(surface[key]!.values);
  });
});
