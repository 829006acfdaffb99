export { Hj212Relay, type Hj212RelayOptions, type RecentFrame, type RelayStatus } from './hj212-relay.ts';
export { findReadingsByFrame, type FrameMatch } from './lookup.ts';
