/**
 * Batch work does not wait for the broker: the `anchored` confirmations of a batch made final are signed and
 * published beside batch cutting and anchoring. Before, they were sent one device after another inside the batch
 * work, so a broker slow to PUBACK them stopped every later batch cut (the fleet bench's stall, docs/BENCHMARKS.md).
 * Here a real aedes broker holds every `anchored` confirmation ingest publishes (its authorizePublish hook does not
 * answer until released): the next batch must still be cut and anchored; once released, the gateway gets them.
 */
import net from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { GENESIS_PREV, parseConfirmation } from '@stele/core';
import { startAnvil } from './anchor/anvil.ts';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer } from './anchor/evm-anchorer.ts';
import { IngestService } from './service.ts';
import { enrolmentOf, makeChain, tempDir, testSigner, TestGateway, waitFor } from './test-helpers.ts';

describe('anchored confirmations', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('are sent beside batch work: with the broker holding them, the next batch is still cut and anchored', async () => {
    const held: (() => void)[] = [];
    let holding = true;
    const broker = await Aedes.createBroker({
      authorizePublish(_client, packet, done) {
        if (holding && packet.topic.endsWith('/acks')) {
          let type: string | undefined;
          try {
            type = parseConfirmation(new Uint8Array(packet.payload as Buffer)).type;
          } catch {
            // not a confirmation: let it through
          }
          if (type === 'anchored') {
            held.push(() => done(null));
            return;
          }
        }
        done(null);
      },
    });
    const server = net.createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    cleanups.push(async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    });
    const dir = await tempDir('anchored-beside');
    cleanups.push(() => dir.remove());
    const anvil = await startAnvil({ stateDir: join(dir.path, 'anvil') });
    cleanups.push(() => anvil.stop());
    const anchorer = await connectEvmAnchorer({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir.path, 'contract.json') });
    const ingest = await IngestService.start({ mqttUrl: url, dataDir: join(dir.path, 'ingest'), signer: testSigner(), issuer: 'stele-ingest-test', anchorer, batchIntervalMs: 100 });
    cleanups.push(() => ingest.stop());
    const device = testSigner();
    const D = 'gw-anchored-beside';
    await ingest.enrol(enrolmentOf(device, D));
    const gw = await TestGateway.connect(url, D);
    cleanups.push(() => gw.close());

    const first = await makeChain(device, D, 3, 1, GENESIS_PREV);
    for (const r of first) await gw.publish(r);
    await waitFor(() => ingest.stats().anchored >= 1 && held.length >= 1, 'the first batch anchored and its anchored confirmation held by the broker', 20_000);
    const batchesBefore = ingest.stats().batches;

    const second = await makeChain(device, D, 3, 4, first.at(-1)!.digest);
    for (const r of second) await gw.publish(r);
    // With the confirmation of the first batch still unanswered, the readings 4..6 are cut and anchored.
    await waitFor(() => ingest.stats().batches > batchesBefore && ingest.stats().anchored > batchesBefore, 'a later batch cut and anchored while the broker holds the first one\'s confirmation', 20_000);
    expect(gw.confirmations.filter((c) => c.type === 'anchored')).toEqual([]);

    holding = false;
    for (const release of held.splice(0)) release();
    await waitFor(() => gw.confirmations.some((c) => c.type === 'anchored' && c.upTo === 6), 'the anchored confirmation up to seq 6 at the gateway', 20_000);
  }, 60_000);
});
