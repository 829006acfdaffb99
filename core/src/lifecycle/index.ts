/** Device lifecycle (FORMAT.md §13): lifecycle statements and the key timeline they define. */
export {
  decodeLifecycleBody,
  encodeLifecycleBody,
  encodeLifecycleProtectedHeader,
  isChainedType,
  isLifecycleStatement,
  LIFECYCLE_CONTENT_TYPE,
  LIFECYCLE_VERSION,
  parseLifecycleStatement,
  signLifecycleStatement,
  verifyLifecycleSignature,
} from './statement.ts';
export type {
  ChainLink,
  EnrolmentBody,
  LifecycleBody,
  LifecycleType,
  ParsedLifecycle,
  ReinstallBody,
  RevocationBody,
  RotationBody,
} from './statement.ts';
export { buildKeyTimeline, findSpan, keyStatusAt } from './keys.ts';
export type { KeySpan, KeyStatus, KeyTimeline, TimelineProblem, TimelineProblemReason } from './keys.ts';
