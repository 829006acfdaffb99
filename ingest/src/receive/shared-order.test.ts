/**
 * Two workers on one shared subscription and one PostgreSQL store (issue #11): mosquitto hands each device's
 * statements to the workers in turn, so nearly every statement arrives ahead of a gap the other worker is
 * filling and is held in the store. Every one must be committed without the gateway sending anything again (this
 * gateway never resends: a statement left held, or a group given up, would stall it for good). Before, a hold that
 * saw the head move was judged again as a conflict, and after three the whole group was dropped.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnvil, type AnvilNode } from '../anchor/anvil.ts';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer } from '../anchor/evm-anchorer.ts';
import { hasMosquitto, startRestartableMosquitto, type RestartableMosquitto } from '../broker/test-brokers.ts';
import { IngestService } from '../service.ts';
import { createTestDatabase, postgresAvailable } from '../store/postgres/test-database.ts';
import { enrolmentOf, makeChain, testSigner, TestGateway, waitFor } from '../test-helpers.ts';

const pg = await postgresAvailable();
const why = !pg.ok ? ` (skipped: ${pg.reason})` : !hasMosquitto() ? ' (skipped: mosquitto is not installed)' : '';

describe.skipIf(why !== '')(`two workers, each device's statements in turn${why}`, () => {
  let dir: string;
  let node: AnvilNode;
  let broker: RestartableMosquitto;
  let dropDb: () => Promise<void>;
  let url: string;
  const workers: IngestService[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-shared-order-'));
    node = await startAnvil({ stateDir: join(dir, 'chain') });
    broker = await startRestartableMosquitto(dir);
    const db = await createTestDatabase();
    dropDb = () => db.drop();
    url = db.url;
  }, 90_000);

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => {});
    await broker?.close();
    await dropDb?.();
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('commits every statement once, the held ones included, with no resend', async () => {
    const ingestKey = testSigner();
    const stateFile = join(dir, 'anchor.json');
    for (const name of ['w1', 'w2']) {
      const anchorer = await connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile });
      workers.push(
        await IngestService.start({ mqttUrl: broker.url, dataDir: join(dir, name), store: url, signer: ingestKey, issuer: 'stele-ingest-test', anchorer, shareGroup: 'order', workerName: name, batchIntervalMs: 60_000 }),
      );
    }
    const [w1, w2] = workers as [IngestService, IngestService];
    // several devices at once: each group of one device waits on the store behind the others', so the other
    // worker moves the head while a group is being judged
    const n = 300;
    const gws: { gw: TestGateway; chain: Awaited<ReturnType<typeof makeChain>> }[] = [];
    for (let d = 0; d < 8; d++) {
      const device = testSigner();
      const id = `gw-turns-${d}`;
      await w1.enrol(enrolmentOf(device, id));
      gws.push({ gw: await TestGateway.connect(broker.url, id), chain: await makeChain(device, id, n) });
    }
    try {
      await Promise.all(gws.map(({ gw, chain }) => Promise.all(chain.map((r) => gw.publish(r)))));
      for (const { gw } of gws) await waitFor(() => gw.ackedUpTo === n, `${gw.deviceId}: a stored confirmation up to ${n} with no resend`, 60_000);
      const [s1, s2] = [w1.stats(), w2.stats()];
      // both took part, and between them took each statement once
      expect(s1.received).toBeGreaterThan((8 * n) / 10);
      expect(s2.received).toBeGreaterThan((8 * n) / 10);
      expect(s1.received + s2.received).toBe(8 * n);
      expect(s1.committed + s2.committed).toBe(8 * n);
      for (const { gw, chain } of gws) {
        expect(gw.rejects).toEqual([]);
        expect((await w2.storedReadings(gw.deviceId, 1, n)).map((r) => r.seq)).toEqual(chain.map((_, i) => i + 1));
      }
    } finally {
      for (const { gw } of gws) await gw.close();
    }
  }, 120_000);
});
