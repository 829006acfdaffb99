export { OutboxError, PublishError, type OutboxErrorCode, type PublishErrorCode } from './errors.ts';
export { toLogFn, type LogFn, type LogLevel, type Logger, type PinoLike } from './log.ts';
export { Outbox, type Acquired, type OutboxEntry, type OutboxOptions, type TakeResult } from './outbox.ts';
export { Publisher, type PublisherOptions, type PublisherStatus } from './publisher.ts';
export { GatewayAgent, type AgentStatus, type GatewayAgentOptions, type SensorStatus, type SourceStatus } from './agent.ts';
