export { IngestService, type EvidenceBundleJson, type IngestOptions, type IngestStats } from './service.ts';
export { IngestStore, type BatchRow, type DeviceRow, type EntryRow, type ForkRow, type Head, type PendingLeaf } from './store.ts';
export { IngestError, type IngestErrorCode, type RejectCode } from './errors.ts';
export { BatchProofs } from './merkle-batch.ts';
export { jsonLineLogger, type LogFn, type LogLevel, type Logger, type PinoLike } from './log.ts';
export * from './anchor/index.ts';
export { KeyRegistry, currentKey, lifecycleLogId, isLifecycleLogId, type DeviceKeys } from './registry/index.ts';
