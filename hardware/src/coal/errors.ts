import { SteleError } from '@stele/core';

/** Codes for coal-lab input that fails a check (records, run files, state files). Tests assert these. */
export type CoalErrorCode =
  /** A serial record breaks the record grammar: control bytes, an empty line in the middle of a record... */
  | 'COAL_BAD_RECORD'
  /** A record or row has a different number of fields than its header. */
  | 'COAL_BAD_FIELD_COUNT'
  /** One field fails its check (date, time, number, required and empty); `where.field` names it. */
  | 'COAL_BAD_FIELD'
  /** A header lacks a required column, repeats one, or is absent. */
  | 'COAL_BAD_HEADER'
  /** A CSV file breaks RFC 4180 quoting (unterminated quote, a quote inside an unquoted field). */
  | 'COAL_BAD_CSV'
  /** The bytes are not valid in the declared (or detected) text encoding. */
  | 'COAL_BAD_ENCODING'
  /** The record's units code is not one the profile knows, so values cannot be labelled. */
  | 'COAL_BAD_UNITS'
  /** A line or file is larger than the configured limit. */
  | 'COAL_OVERSIZE'
  /** A result is not in a final/approved state and must not become a reading. */
  | 'COAL_NOT_FINAL'
  /** A persisted poller state file exists but cannot be read back (never silently reset: that would re-emit). */
  | 'COAL_STATE_CORRUPT'
  /** A custody event lacks a field or carries a field of the wrong form. */
  | 'CUSTODY_BAD_EVENT';

export class CoalError extends SteleError<CoalErrorCode> {}
