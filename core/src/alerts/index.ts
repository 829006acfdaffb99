/** The rule engine (FORMAT.md §15): rules as data over verified readings -> aggregates and alerts. */
export * from './decimal.ts';
export * from './types.ts';
export { AlertError, parseRule, parseRuleSet, type AlertErrorCode } from './rules.ts';
export { alertId, DEFAULT_UTC_OFFSET } from './common.ts';
export { CORRECTED_DECIMALS } from './emissions.ts';
export { evalReading, evaluateRule, evaluateRuleSet, parseReadingLine, parseReadingLines, readingJsonView, MAX_READING_LINE, MAX_READING_LINES } from './engine.ts';
export { checkAlert, isStructuredAlert, type AlertCheckFailure, type AlertCheckResult } from '../verify/alert-check.ts';
export {
  checkCustody,
  checkCustodyEvents,
  CUSTODY_AT_RE,
  CUSTODY_FIELDS,
  CUSTODY_KIND,
  CUSTODY_STEPS,
  type CustodyChainEvent,
  type CustodyEvent,
  type CustodyInput,
  type CustodyIssue,
  type CustodyIssueCode,
  type CustodyLink,
  type CustodyParams,
  type CustodyResult,
  type CustodyStep,
} from './custody.ts';
