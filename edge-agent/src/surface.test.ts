/**
 * The public surface of @stele/edge-agent (issue 10 item 1): every name each entry point in package.json `exports`
 * offers, values and types. An export added or removed fails here until SURFACE says so: a change to the API is a
 * deliberate edit to this list, not a side effect of moving a file. Entry points and their run-time exports are
 * loaded too, so an entry that does not load (or exports at run time what TypeScript calls a type) fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { surfaceOf, type EntrySurface } from '@stele/testkit/surface';

const SURFACE: Record<string, string[]> = {
  '.': [
    'Acquired', 'AgentStatus', 'BrokerCause', 'BrokerCheck', 'BrokerConfig', 'BrokerConfigError',
    'CheckBrokerOptions', 'CheckStatus', 'ClockMonitor', 'ClockMonitorOptions', 'ClockProbe', 'ClockProbeResult',
    'ClockReason', 'ClockStatus', 'ClosableSigner', 'ConfigError', 'ConfigErrorCode', 'ConfigIssue', 'ConfirmedHead',
    'DEFAULT_MAX_SIGN_BATCH', 'DiskLevel', 'DiskMonitor', 'DiskMonitorOptions', 'DiskPolicy', 'DiskStatus',
    'DoctorCheck', 'DoctorOptions', 'DoctorReport', 'FrameMatch', 'FsSpace', 'GATEWAY_USAGE', 'GatewayAgent',
    'GatewayAgentOptions', 'GatewayCliDeps', 'GatewayConfig', 'GatewayDeps', 'GatewayIo', 'GatewayStatus',
    'HealthPublisher', 'HealthState', 'Hj212Relay', 'Hj212RelayOptions', 'InstrumentConfig', 'InstrumentDeps',
    'InstrumentRunner', 'InstrumentState', 'InstrumentStatus', 'KNOWN_DRIVERS', 'KeyConfig', 'LogFn', 'LogLevel',
    'Logger', 'MIN_PLAUSIBLE_TIME_MS', 'Notifier', 'OpenSignerOptions', 'OpsServer', 'Outbox', 'OutboxEntry',
    'OutboxError', 'OutboxErrorCode', 'OutboxOptions', 'ParseConfigOptions', 'PinoLike', 'PortErrorCode',
    'PublishError', 'PublishErrorCode', 'Publisher', 'PublisherOptions', 'PublisherStatus', 'RecentFrame',
    'RelayStatus', 'Retention', 'RetentionOptions', 'RetentionStatus', 'RunningGateway', 'SensorStatus', 'SignedRun',
    'SigningStatus', 'SourceStatus', 'StatfsFn', 'TakeResult', 'TakenReading', 'checkBroker', 'checkPort',
    'createNotifier', 'describePortProblem', 'explainBrokerError', 'findReadingsByFrame', 'formatDoctorReport',
    'formatIssue', 'formatStatus', 'healthMessage', 'healthTopic', 'isUnhealthy', 'keyFix', 'loadConfig',
    'mqttOptionsFor', 'openSigner', 'parseConfig', 'portErrorCode', 'probeSystemClock', 'problemsOf',
    'reinstallAgent', 'renderMetrics', 'rotateKey', 'runDoctor', 'runGateway', 'startGateway', 'startOpsServer',
    'toLogFn',
  ],
  './cli': [
    'DEFAULT_CONFIG', 'GATEWAY_USAGE', 'GatewayCliDeps', 'GatewayIo', 'formatStatus', 'runGateway',
  ],
  './config-schema': [
    'At', 'Ctx', 'Field', 'Fields', 'INVALID', 'Invalid', 'Rule', 'Shape', 'anyMap', 'boolean', 'bytes', 'duration',
    'integer', 'list', 'object', 'offsetOf', 'oneOf', 'report', 'show', 'string', 'suggest',
  ],
};

const LOAD: Record<string, () => Promise<Record<string, unknown>>> = {
  '.': () => import('@stele/edge-agent'),
  './cli': () => import('@stele/edge-agent/cli'),
  './config-schema': () => import('@stele/edge-agent/config-schema'),
};

describe('the public surface of @stele/edge-agent', () => {
  let surface: Record<string, EntrySurface>;
  beforeAll(() => {
    surface = surfaceOf(new URL('../package.json', import.meta.url));
  }, 120_000); // the TypeScript program of the package: seconds, more on a loaded 2-core machine

  it('exports exactly the pinned names from each entry point', () => {
    expect(Object.fromEntries(Object.entries(surface).map(([key, s]) => [key, s.names]))).toEqual(SURFACE);
  });

  it.each(Object.keys(LOAD))('entry point %s loads, with the pinned values at run time', async (key) => {
    const mod = await LOAD[key]!();
    expect(Object.keys(mod).sort()).toEqual(surface[key]!.values);
  });
});
