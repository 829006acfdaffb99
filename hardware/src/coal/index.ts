/** Coal-quality laboratory adapters (PROTOCOLS.md §3): serial records, run files, folder and database polling, custody. */
export { CoalError, type CoalErrorCode } from './errors.ts';
export { COAL_ASSAY_CODE, COAL_PARAMETERS, type CoalBasis, type CoalKind, type CoalParameter, basisOf } from './parameters.ts';
export { type CoalAcquired, type CoalResult, coalReading } from './result.ts';
export { type Cal3kDriverOptions, cal3kDriver } from './cal3k-driver.ts';
export { CAL3K_EXAMPLE_FINAL_STATUSES, CAL3K_HEADER, type Cal3kEvent, type Cal3kOptions, Cal3kStreamDecoder, decodeCal3k } from './cal3k.ts';
export { type CoalTextEncoding, type CsvRow, decodeText, parseCsv } from './csv.ts';
export {
  PARR_6X00_PROFILE,
  type RunCsvColumn,
  type RunCsvFile,
  type RunCsvOptions,
  type RunCsvProfile,
  type RunCsvRejection,
  type RunCsvTimeFormat,
  normaliseHeader,
  parseRunCsv,
} from './run-csv.ts';
export { type ExportFile, ExportFolderPoller, type FolderPollReport, type FolderPollerOptions } from './folder-poller.ts';
export {
  DatabasePoller,
  type DbPollReport,
  type DbPollerOptions,
  type DbRow,
  type DbRowEvent,
  KAIYUAN_5E_CALORIMETER_COLUMNS,
  canonicalRowBytes,
  coalResultFromRow,
  measurementsFromRow,
} from './db-poller.ts';
export {
  CUSTODY_KIND,
  type CustodyEvent,
  type CustodyStep,
  custodyEventFromMeasurements,
  custodyMeasurements,
  validateCustodyEvent,
} from './custody.ts';
