/**
 * The public surface of @stele/simulator (issue 10 item 1): every name each entry point in package.json `exports`
 * offers, values and types. An export added or removed fails here until SURFACE says so: a change to the API is a
 * deliberate edit to this list, not a side effect of moving a file. Entry points and their run-time exports are
 * loaded too, so an entry that does not load (or exports at run time what TypeScript calls a type) fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { surfaceOf, type EntrySurface } from '@stele/testkit/surface';

const SURFACE: Record<string, string[]> = {
  '.': [
    'AnswerInfo', 'AttachOptions', 'CAL3K_SIM_ABORTED_STATUS', 'CAL3K_SIM_FINAL_STATUS', 'Cal3kSimRecord',
    'Cal3kSimulator', 'Cal3kSimulatorOptions', 'CemsFaults', 'CemsSimulator', 'CemsSimulatorOptions', 'CemsStats',
    'LinePacer', 'ModbusSlaveBehaviour', 'ModbusSlaveStats', 'ModbusThFamily', 'ModbusThSlave',
    'ModbusThSlaveOptions', 'PARR_SIM_HEADER', 'ParrCsvSimulator', 'ParrRunFile', 'ParrRunOptions', 'PtyPair',
    'PtyPairOptions', 'SOCAT_SKIP_REASON', 'SimCustodyEvent', 'SlaveLink', 'SoftwareGatewayYaml', 'WritableLink',
    'encodeGb18030', 'episodeRuleFiles', 'hj212Instrument', 'simulateCustodyChain', 'socatAvailable', 'softwareGatewayYaml',
  ],
  './demo': [
    'DemoIo', 'DemoSummary', 'demo', 'runDemo',
  ],
  './sim': [
    'runSim', 'scenariosDir', 'shippedScenarios',
  ],
};

const LOAD: Record<string, () => Promise<Record<string, unknown>>> = {
  '.': () => import('@stele/simulator'),
  './demo': () => import('@stele/simulator/demo'),
  './sim': () => import('@stele/simulator/sim'),
};

describe('the public surface of @stele/simulator', () => {
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
