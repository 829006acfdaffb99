/**
 * The public surface of @stele/ingest (issue 10 item 1): every name each entry point in package.json `exports`
 * offers, values and types. An export added or removed fails here until SURFACE says so: a change to the API is a
 * deliberate edit to this list, not a side effect of moving a file. Entry points and their run-time exports are
 * loaded too, so an entry that does not load (or exports at run time what TypeScript calls a type) fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { surfaceOf, type EntrySurface } from '@stele/testkit/surface';

const SURFACE: Record<string, string[]> = {
  '.': [
    'ANVIL_CHAIN_ID', 'ANVIL_DEV_PRIVATE_KEY', 'ANVIL_STATE_FILE', 'AlertBook', 'AlertChannel', 'AlertListItem', 'AnchorError',
    'AnchorFacts', 'AnchorRef', 'Anchorer', 'AnchorerState', 'AnvilNode', 'AnvilOptions', 'BatchRow', 'BrokerAccess',
    'BrokerRole', 'BrokerUser', 'DEFAULT_MAX_PACKET_BYTES', 'DeviceKeys', 'DeviceRow', 'EntryRow',
    'EvidenceBundleJson', 'EvmAnchorer', 'EvmAnchorerOptions', 'ForkRow', 'Head', 'HeldRow', 'IngestError',
    'IngestErrorCode', 'IngestHttp', 'IngestHttpOptions', 'IngestIo', 'IngestKeyConfig', 'IngestOptions',
    'IngestService', 'IngestSigner', 'IngestStats', 'IngestStore', 'KeyRegistry', 'LevelStore', 'LogFn', 'LogLevel',
    'Logger', 'NOTICE_FORMAT', 'NoticeCheck', 'Notifier', 'PendingLeaf', 'PinoLike', 'PostgresStore', 'RawRef', 'RejectCode', 'STELE_ANCHOR_ABI', 'TimeAxis',
    'TimeRef', 'aedesAccessHooks', 'checkMqttNotice', 'checkWebhookRequest', 'connectEvmAnchorer', 'currentKey', 'describeIngestKey', 'initIngestKey',
    'isLifecycleLogId', 'isPostgresUrl', 'jsonLineLogger', 'lifecycleLogId', 'limitServerSocket', 'listItem',
    'loadOrCreateAdminToken', 'loadRuleFiles', 'mayPublish', 'maySubscribe', 'mayUseClientId', 'mqttChannel', 'mqttNotice', 'noticeBody', 'noticeMac', 'openIngestKey',
    'openStore', 'readAdminToken', 'readAnchor', 'resolveAnvilBinary', 'runIngest', 'startAnvil', 'startIngestHttp', 'webhookChannel', 'webhookHeaders',
  ],
  './cli': [
    'IngestIo', 'ingestUrl', 'readInstallerKeys', 'runEvidence', 'runIngest',
  ],
  './anchor': [
    'ANVIL_CHAIN_ID', 'ANVIL_DEV_PRIVATE_KEY', 'ANVIL_STATE_FILE', 'AnchorError', 'AnchorFacts', 'AnchorRef',
    'Anchorer', 'AnchorerState', 'AnvilNode', 'AnvilOptions', 'EvmAnchorer', 'EvmAnchorerOptions', 'STELE_ANCHOR_ABI',
    'connectEvmAnchorer', 'readAnchor', 'resolveAnvilBinary', 'startAnvil',
  ],
  './testing': [
    'IngestSetup', 'IngestSetupOptions', 'IngestStack', 'PolicyBroker', 'RestartableMosquitto', 'SignedReading', 'TestBroker', 'TestGateway',
    'createTestDatabase', 'enrolmentOf', 'envelope', 'hasMosquitto', 'makeChain', 'postgresAvailable', 'readingAt',
    'signedReading', 'startBroker', 'startPolicyAedes', 'startPolicyMosquitto', 'startRestartableMosquitto', 'tempDir', 'testSigner',
    'useIngestStack', 'waitFor',
  ],
};

const LOAD: Record<string, () => Promise<Record<string, unknown>>> = {
  '.': () => import('@stele/ingest'),
  './cli': () => import('@stele/ingest/cli'),
  './anchor': () => import('@stele/ingest/anchor'),
  './testing': () => import('@stele/ingest/testing'),
};

describe('the public surface of @stele/ingest', () => {
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
