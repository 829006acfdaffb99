/**
 * Item 4 of issue #5: a QoS 1 PUBACK only means the broker has a message. mosquitto 2.0 was measured dropping
 * queued QoS 1 messages meant for a slow or crashed subscriber; here an aedes broker does the same on purpose
 * (an `authorizeForward` hook silently drops statements on their way to ingest), and the gateway must still get
 * every reading committed, because only ingest's ack counts and what is not acknowledged in time is resent.
 * Real ingest (in process), real publisher and outbox.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@stele/testkit';
import { decodeCbor, utf8, sha256 } from '@stele/core';
import { parseStatement } from '@stele/core/cose';
import { createSoftwareKey, makeEnrolmentRecord } from '@stele/device';
import { GatewayAgent, Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { IngestService, type Anchorer } from '@stele/ingest';

const DEVICE = 'gw-drop-1';
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const fakeAnchorer: Anchorer = {
  chainId: 31337,
  contract: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
  rpcUrl: 'http://127.0.0.1:1',
  anchor: async (batchId) => ({ chainId: 31337, contract: '0x5fbdb2315678afecb367f032d93f642f64180aa3', txHash: `0x${'ab'.repeat(32)}`, blockNumber: batchId, blockTime: 1_800_000_000 }),
};

describe('a broker that silently drops statements meant for ingest', () => {
  it('loses nothing: the publisher resends what ingest did not acknowledge in time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stele-drop-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const dropped: number[] = [];
    const seen = new Set<number>();
    const broker = await Aedes.createBroker({
      authorizeForward: (client, packet) => {
        if (!packet.topic.endsWith('/statements') || !client?.id.startsWith('stele-ingest')) return packet;
        const seq = parseStatement((decodeCbor(new Uint8Array(packet.payload as Buffer)) as Map<string, Uint8Array>).get('statement')!).seq;
        // the first delivery of seqs 20..59 and of every 7th seq is dropped, as a broker dropping a queue would
        if (!seen.has(seq) && ((seq >= 20 && seq < 60) || seq % 7 === 0)) {
          seen.add(seq);
          dropped.push(seq);
          return null;
        }
        seen.add(seq);
        return packet;
      },
    });
    const server = net.createServer({ noDelay: true }, broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    });
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;

    const ingestKey = await createSoftwareKey(join(dir, 'ingest.pem'));
    const ingest = await IngestService.start({ mqttUrl: url, dataDir: join(dir, 'ingest'), signer: ingestKey, issuer: 'drop-test', anchorer: fakeAnchorer, batchIntervalMs: 200 });
    cleanups.push(() => ingest.stop());
    const signer = await createSoftwareKey(join(dir, 'gw.pem'));
    await ingest.enrol(makeEnrolmentRecord(signer, DEVICE));

    const outbox = await Outbox.open(join(dir, 'outbox'));
    cleanups.push(() => outbox.close());
    const publisher = new Publisher({ mqttUrl: url, deviceId: DEVICE, outbox, resendAfterMs: 300, reconnectPeriodMs: 100, ingestKey: ingestKey.publicKey });
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox, publisher });
    cleanups.push(() => agent.stop());
    await publisher.start();
    const N = 150;
    async function* source(): AsyncGenerator<Acquired> {
      for (let i = 1; i <= N; i++) {
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
        yield { sensor: 's', time: 1_800_000_000_000 + i, clock: { synced: true, source: 'ntp' }, meas: [{ code: 'a21026', kind: 'Rtd', value: `${i}` }], raw: [sha256(utf8(`f${i}`))] };
      }
    }
    agent.addSource('s', source());
    await waitFor(() => outbox.ackedUpTo() === N, `acks up to ${N}`, 30_000);
    expect(ingest.head(DEVICE).seq).toBe(N);
    expect(dropped.length).toBeGreaterThan(40);
    expect(publisher.status().resends).toBeGreaterThanOrEqual(1);
    expect(ingest.stats().rejected).toEqual({});
    await ingest.flush();
    const bundle = await ingest.exportBundle(DEVICE, 1, N);
    expect(bundle.entries.map((e) => e.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  });
});
