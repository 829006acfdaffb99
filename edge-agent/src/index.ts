export { OutboxError, PublishError, type OutboxErrorCode, type PublishErrorCode } from './errors.ts';
export { toLogFn, type LogFn, type LogLevel, type Logger, type PinoLike } from './log.ts';
export { DEFAULT_MAX_SIGN_BATCH, Outbox, type Acquired, type OutboxEntry, type OutboxOptions, type SignedRun, type TakenReading, type TakeResult } from './outbox.ts';
export { Publisher, type PublisherOptions, type PublisherStatus } from './publisher.ts';
export { GatewayAgent, type AgentStatus, type GatewayAgentOptions, type SensorStatus, type SigningStatus, type SourceStatus } from './agent.ts';
export { reinstallAgent, rotateKey, type ConfirmedHead } from './rotation.ts';

// Config, the gateway process, doctor, ops (issue #5 items 1, 2, 5, 6, 7, 9).
export { ConfigError, formatIssue, type ConfigErrorCode, type ConfigIssue } from './config/errors.ts';
export {
  KNOWN_DRIVERS,
  loadConfig,
  parseConfig,
  type BrokerConfig,
  type DiskPolicy,
  type GatewayConfig,
  type InstrumentConfig,
  type KeyConfig,
  type ParseConfigOptions,
} from './config/config.ts';
export { startGateway, type GatewayDeps, type RunningGateway } from './run/gateway.ts';
export { InstrumentRunner, describePortProblem, portErrorCode, type InstrumentDeps, type PortErrorCode } from './run/instrument.ts';
export { openSigner, keyFix, type ClosableSigner, type OpenSignerOptions } from './run/signer.ts';
export { BrokerConfigError, mqttOptionsFor } from './run/mqtt-options.ts';
export { ClockMonitor, MIN_PLAUSIBLE_TIME_MS, probeSystemClock, type ClockMonitorOptions, type ClockProbe, type ClockProbeResult, type ClockReason, type ClockStatus } from './ops/clock.ts';
export { DiskMonitor, type DiskLevel, type DiskMonitorOptions, type DiskStatus, type FsSpace, type StatfsFn } from './ops/disk.ts';
export { renderMetrics, problemsOf, type GatewayStatus, type InstrumentState, type InstrumentStatus } from './ops/status.ts';
export { startOpsServer, isUnhealthy, type OpsServer } from './ops/http.ts';
export { HealthPublisher, healthTopic, healthMessage, type HealthState } from './ops/health-topic.ts';
export { createNotifier, type Notifier } from './ops/notify.ts';
export { runDoctor, formatDoctorReport, checkPort, type DoctorCheck, type DoctorOptions, type DoctorReport, type CheckStatus } from './doctor/doctor.ts';
export { checkBroker, explainBrokerError, type BrokerCause, type BrokerCheck, type CheckBrokerOptions } from './doctor/broker.ts';
export { runGateway, formatStatus, GATEWAY_USAGE, type GatewayIo, type GatewayCliDeps } from './cli.ts';
export { Retention, type RetentionOptions, type RetentionStatus } from './retention/index.ts';
export { Hj212Relay, findReadingsByFrame, type Hj212RelayOptions, type RelayStatus, type RecentFrame, type FrameMatch } from './forward/index.ts';
