export { OPEN_CODES, VERIFY_CODES, type OpenCode, type VerifyCode } from './codes.ts';
export { FAIL, formatTime, HEADLINE, NOTE, PASS, shortHex, TITLES } from './messages.ts';
export type {
  AnchorSummary,
  Check,
  CheckId,
  CheckStatus,
  Failure,
  KeySummary,
  MemberSummary,
  Note,
  Summary,
  Text,
  TrustSummary,
  Verdict,
  VerdictState,
} from './verdict.ts';
export {
  DEFAULT_CHAIN_DEADLINE_MS,
  DEFAULT_TIME_TOLERANCE_S,
  formatErrorVerdict,
  verifyBundle,
  verifyBundleBytes,
  verifySignatureBatch,
  type AnchorReader,
  type SignatureBatchVerifier,
  type SignatureJob,
  type VerifyOptions,
} from './verify.ts';
export { findFrameInBundle, type FrameMatch, type FrameQueryResult } from './frame-query.ts';
export { basisTimeMs, judgeBundleAlert, judgeSetAlert, type AlertSetMember } from './alert-check.ts';
export { verifyEvidenceSet } from './evidence-set.ts';
