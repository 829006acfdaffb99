/**
 * The one error type of Stele. Untrusted input that fails a check raises a `SteleError` with a code;
 * misuse of an API (wrong argument types) raises `TypeError`/`RangeError` instead.
 * Tests assert `code`, never message text.
 */
export class SteleError<C extends string = string> extends Error {
  readonly code: C;
  /** Where the problem was found: a frame offset, a config line, a device id, a bundle path. */
  readonly where: Record<string, unknown> | undefined;

  constructor(code: C, message: string, options?: { cause?: unknown; where?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.where = options?.where;
  }
}

/** Codes raised while decoding Stele's own byte formats (§2–§5 of docs/FORMAT.md). */
export type FormatErrorCode =
  | 'CBOR_DECODE_ERROR'
  | 'KEY_FORMAT_ERROR'
  | 'READING_FORMAT_ERROR'
  | 'COSE_FORMAT_ERROR'
  | 'STATEMENT_FORMAT_ERROR'
  | 'RECEIPT_FORMAT_ERROR'
  | 'BUNDLE_FORMAT_ERROR'
  | 'BUNDLE_LIMIT_ERROR'
  | 'POLICY_FORMAT_ERROR';

export class FormatError extends SteleError<FormatErrorCode> {}

export function isSteleError(e: unknown): e is SteleError {
  return e instanceof SteleError;
}
