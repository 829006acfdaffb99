/**
 * Ingest throughput over a real aedes broker and LevelDB, with a stub anchorer (the chain is not what is measured).
 * Opt-in: STELE_BENCH=1 npx vitest run ingest/src/throughput.test.ts. Prints numbers; asserts only correctness.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Anchorer } from './anchor/index.ts';
import { IngestService } from './service.ts';
import { enrolmentOf, makeChain, startBroker, tempDir, testSigner, TestGateway, waitFor, type SignedReading, type TestBroker } from './test-helpers.ts';

const DEVICES = Number(process.env.STELE_BENCH_DEVICES ?? 10);
const PER_DEVICE = Number(process.env.STELE_BENCH_READINGS ?? 500);
const WINDOW = Number(process.env.STELE_BENCH_WINDOW ?? 32);

describe.skipIf(!process.env.STELE_BENCH)('ingest throughput (STELE_BENCH=1)', () => {
  let broker: TestBroker;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    broker = await startBroker();
    dir = await tempDir('ingest-bench');
  });
  afterAll(async () => {
    await broker.close();
    await dir.remove();
  });

  it(`commits ${DEVICES} devices x ${PER_DEVICE} readings`, async () => {
    const stub: Anchorer = {
      chainId: 31337,
      contract: '0x0000000000000000000000000000000000000000',
      rpcUrl: 'http://127.0.0.1:1',
      anchor: async () => ({ chainId: 31337, contract: '0x0', txHash: '0x0', blockNumber: 1, blockTime: 1 }),
    };
    const ingest = await IngestService.start({ mqttUrl: broker.url, dataDir: dir.path, signer: testSigner(), issuer: 'bench', anchorer: stub, batchIntervalMs: 1000 });
    const fleet: { gw: TestGateway; chain: SignedReading[] }[] = [];
    for (let d = 0; d < DEVICES; d++) {
      const signer = testSigner();
      const id = `gw-b${d}`;
      await ingest.enrol(enrolmentOf(signer, id));
      fleet.push({ gw: await TestGateway.connect(broker.url, id), chain: await makeChain(signer, id, PER_DEVICE) });
    }
    const t0 = performance.now();
    await Promise.all(fleet.map(async ({ gw, chain }) => {
      // A window of in-flight publishes per gateway (one connection keeps them in order).
      for (let i = 0; i < chain.length; i += WINDOW) await Promise.all(chain.slice(i, i + WINDOW).map((r) => gw.publish(r)));
    }));
    await waitFor(() => fleet.every(({ gw }) => gw.ackedUpTo === PER_DEVICE), 'all acked', 300_000);
    const t1 = performance.now();
    await ingest.flush();
    const t2 = performance.now();
    const total = DEVICES * PER_DEVICE;
    console.log(`ingest: ${total} readings from ${DEVICES} devices acked in ${(t1 - t0).toFixed(0)} ms = ${((total * 1000) / (t1 - t0)).toFixed(0)} readings/s; final flush ${(t2 - t1).toFixed(0)} ms; stats ${JSON.stringify(ingest.stats())}`);
    expect(ingest.stats().readings).toBe(total);
    for (const { gw } of fleet) await gw.close();
    await ingest.stop();
  }, 600_000);
});
