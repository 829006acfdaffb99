/** COSE structures of Stele (FORMAT.md §3, §5): generic COSE_Sign1, signed statements, receipts. */
export * from './labels.ts';
export { decodeSign1, encodeSign1, sigStructure1 } from './sign1.ts';
export { encodeDeterministic } from './plain-bytes.ts';
export type { CoseSign1 } from './sign1.ts';
export {
  checkStatementAgainstReading,
  encodeStatementProtectedHeader,
  parseStatement,
  READING_CONTENT_TYPE,
  signBatchedStatements,
  signStatement,
  verifyStatementSignature,
} from './statement.ts';
export type { ParsedStatement, StatementBatch, StatementHeaderFields } from './statement.ts';
export { encodeReceipt, encodeReceiptProtectedHeader, parseReceipt, signBatchRoot, verifyReceipt } from './receipt.ts';
export type { InclusionProof, ParsedReceipt, ReceiptClaims } from './receipt.ts';
export {
  checkConfirmation,
  CONFIRMATION_CONTENT_TYPE,
  CONFIRMATION_MAX_BYTES,
  ConfirmationError,
  parseConfirmation,
  signConfirmation,
} from './confirmation.ts';
export type { ConfirmationBody, ConfirmationErrorCode, ConfirmationType, ParsedConfirmation } from './confirmation.ts';
