export { IngestService, type EvidenceBundleJson, type IngestOptions, type IngestStats } from './service.ts';
export {
  LevelStore,
  PostgresStore,
  openStore,
  isPostgresUrl,
  type IngestStore,
  type BatchRow,
  type DeviceRow,
  type EntryRow,
  type ForkRow,
  type Head,
  type PendingLeaf,
  type HeldRow,
  type TimeAxis,
  type TimeRef,
} from './store/index.ts';
export { IngestError, type IngestErrorCode, type RejectCode } from './errors.ts';
export { jsonLineLogger, type LogFn, type LogLevel, type Logger, type PinoLike } from './log.ts';
export * from './anchor/index.ts';
export { KeyRegistry, currentKey, lifecycleLogId, isLifecycleLogId, type DeviceKeys } from './registry/index.ts';
export { startIngestHttp, type IngestHttp, type IngestHttpOptions } from './http/server.ts';
export { AlertBook, loadRuleFiles, listItem, type AlertListItem } from './alerts.ts';
export { runIngest, type IngestIo } from './cli.ts';
export type { RawRef } from './store/index.ts';
export { aedesAccessHooks, BrokerAccess, mayPublish, maySubscribe, mayUseClientId, type BrokerRole, type BrokerUser } from './broker/access.ts';
export { DEFAULT_MAX_PACKET_BYTES, limitServerSocket } from './broker/packet-limit.ts';
export { initIngestKey, openIngestKey, describeIngestKey, type IngestKeyConfig, type IngestSigner } from './key.ts';
export { loadOrCreateAdminToken, readAdminToken } from './http/admin-token.ts';
export { checkMqttNotice, checkWebhookRequest, mqttChannel, mqttNotice, Notifier, NOTICE_FORMAT, noticeBody, noticeMac, webhookChannel, webhookHeaders, type AlertChannel, type NoticeCheck } from './notify/index.ts';
