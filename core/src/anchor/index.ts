export {
  ANCHORED_EVENT_TOPIC,
  AnchorError,
  DEFAULT_READ_TIMEOUT_MS,
  readAnchor,
  type AnchorErrorCode,
  type AnchorFacts,
  type AnchorRef,
} from './evm-reader.ts';
