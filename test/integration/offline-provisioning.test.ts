/**
 * Issue #3 acceptance: offline provisioning round trip. The installer provisions a gateway with no broker
 * reachable; the gateway takes readings into its outbox while nothing answers; later the enrolment file reaches
 * ingest, the broker comes up, and the buffered readings are accepted and verify.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '@stele/testkit';
import { readAnchor, sleep, verifyBundle } from '@stele/core';
import { policyTrustingBundle } from '@stele/core/testing';
import { loadOrCreateSoftwareSigner, loadSoftwareSigner, provisionGateway } from '@stele/device';
import { GatewayAgent, Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { ANVIL_DEV_PRIVATE_KEY, IngestService, connectEvmAnchorer, startAnvil } from '@stele/ingest';

function reading(i: number): Acquired {
  return {
    sensor: '010000A8900016F000169DC0',
    time: 1_763_900_000_000 + i * 1000,
    clock: { synced: false, source: 'none' },
    meas: [{ code: 'a21026', kind: 'Rtd', value: (20 + i / 10).toFixed(1), unit: 'mg/m³', flag: 'N' }],
    raw: [new Uint8Array(32).fill(i)],
  };
}

describe('offline provisioning round trip', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('provisions with no broker, buffers readings, and they are accepted and verify once the file is enrolled', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stele-offline-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const deviceId = 'gw-roof-0007';

    // 1. On the roof: the key and the countersigned enrolment request, no network involved.
    const provisioned = await provisionGateway({
      backend: { kind: 'software', keyFile: join(dir, 'gateway.pem') },
      deviceId,
      site: 'stack 2, roof',
      instruments: [{ id: 'cems-1' }],
      installerKeyFile: join(dir, 'installer.pem'),
      createInstallerKey: true,
      installerName: 'installer 7',
      outDir: join(dir, 'usb'),
    });
    expect(provisioned.summary.length).toBeLessThan(300); // fits a QR code

    // 2. The gateway runs with a broker address where nothing listens yet: readings are taken into the outbox.
    const brokerPort = await freePort();
    const mqttUrl = `mqtt://127.0.0.1:${brokerPort}`;
    const signer = await loadSoftwareSigner(join(dir, 'gateway.pem'));
    const outbox = await Outbox.open(join(dir, 'outbox'));
    cleanups.push(() => outbox.close());
    // the ingest key is made before the gateway runs: provisioning pins its public key (FORMAT.md §11.1)
    const ingestSigner = await loadOrCreateSoftwareSigner(join(dir, 'ingest.pem'));
    const publisher = new Publisher({ mqttUrl, deviceId, outbox, resendAfterMs: 1000, reconnectPeriodMs: 100, maxReconnectPeriodMs: 500, ingestKey: ingestSigner.publicKey });
    const agent = new GatewayAgent({ deviceId, signer, outbox, publisher });
    cleanups.push(() => agent.stop());
    await publisher.start();
    const N = 25;
    for (let i = 1; i <= N; i++) await outbox.take(reading(i), signer, deviceId);
    publisher.notify();
    await sleep(300);
    expect(outbox.head().seq).toBe(N);
    expect(outbox.ackedUpTo()).toBe(0);

    // 3. Back at the office: the chain, ingest, and the enrolment file carried on the USB stick.
    const chain = await startAnvil({ stateDir: join(dir, 'chain') });
    cleanups.push(() => chain.stop());
    const anchorer = await connectEvmAnchorer({ rpcUrl: chain.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'chain', 'contract.json') });
    const broker = await Aedes.createBroker();
    // Ingest reaches the broker on a listener of its own; the gateway's address starts listening only once the
    // enrolment file is in (else a reading could arrive first, be refused as UNKNOWN_KEY_ERROR and wait for a resend).
    const ingestListener = net.createServer(broker.handle);
    const server = net.createServer(broker.handle);
    cleanups.push(async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => ingestListener.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    });
    await new Promise<void>((r) => ingestListener.listen(0, '127.0.0.1', r));
    const service = await IngestService.start({
      mqttUrl: `mqtt://127.0.0.1:${(ingestListener.address() as net.AddressInfo).port}`,
      dataDir: join(dir, 'ingest'),
      signer: ingestSigner,
      issuer: 'stele-ingest-test',
      anchorer,
      batchIntervalMs: 60_000,
      trustedInstallers: [(await loadSoftwareSigner(join(dir, 'installer.pem'))).publicKey],
    });
    cleanups.push(() => service.stop());
    cleanups.push(() => agent.stop()); // first of all: the broker's server.close waits for the gateway's connection
    await service.enrolRequest(await readFile(provisioned.requestFile));
    await new Promise<void>((r) => server.listen(brokerPort, '127.0.0.1', r));

    // 4. The gateway reconnects by itself and drains its buffer; every reading is accepted.
    await waitFor(() => outbox.ackedUpTo() === N, `ingest to acknowledge seq ${N}`);
    expect(service.stats().rejected).toEqual({});
    await service.flush();
    const bundle = await service.exportEvidence(deviceId, 1, N);
    const verdict = await verifyBundle(bundle, { anchorReader: (ref, batchId) => readAnchor(chain.rpcUrl, ref, batchId), trust: await policyTrustingBundle(bundle) });
    expect(verdict.state).toBe('verified');
    expect(verdict.summary.readings).toBe(N);
  }, 90_000);
});
