export { Notifier, type ChannelStats, type NotifierOptions } from './notifier.ts';
export { mqttChannel, webhookChannel, type AlertChannel, type MqttChannelOptions, type WebhookOptions } from './channels.ts';
export {
  checkMqttNotice,
  checkNotice,
  checkWebhookRequest,
  DEFAULT_NOTICE_TOLERANCE_MS,
  MIN_SECRET_BYTES,
  mqttNotice,
  NOTICE_FORMAT,
  noticeBody,
  noticeMac,
  readNoticeSecret,
  webhookHeaders,
  type NoticeCheck,
} from './notice.ts';
