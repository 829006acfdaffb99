/**
 * Receipts from ingest (`stele/v1/<device>/acks`) are idempotent on the gateway: a repeated, stale or reordered
 * ack never moves the acked mark backwards, never emits `acked` twice for the same mark, and never causes
 * resends; and the retention prunes only what the mark covers.
 */
import { join } from 'node:path';
import mqtt from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SoftwareSigner } from '@stele/device';
import { Publisher } from '../publisher.ts';
import { acquired, confirmation, createTestKey, sleep, startFakeIngest, TEST_INGEST, useBrokerOutbox, waitFor } from '../test-helpers.ts';
import { Retention } from './retention.ts';

const DEVICE = 'gw-rcpt-1';
const env = useBrokerOutbox('stele-rcpt-');
const { cleanups } = env;
let signer: SoftwareSigner;

beforeAll(async () => {
  signer = await createTestKey('stele-rcpt-key-');
});

describe('receipts', () => {
  it('are idempotent: repeated, stale and reordered acks move the mark only forward', async () => {
    for (let i = 1; i <= 10; i++) await env.outbox.take(acquired(i), signer, DEVICE);
    const fake = await startFakeIngest(env.broker.url, DEVICE, { ack: false });
    cleanups.push(() => fake.stop());
    const p = new Publisher({ mqttUrl: env.broker.url, deviceId: DEVICE, outbox: env.outbox, ingestKey: TEST_INGEST.publicKey, reconnectPeriodMs: 100, resendAfterMs: 60_000 });
    cleanups.push(() => p.stop());
    const marks: number[] = [];
    p.on('acked', (upTo: number) => marks.push(upTo));
    await p.start();
    await waitFor(() => fake.received.length === 10, 10_000, 'ten statements');
    const c = await mqtt.connectAsync(env.broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => c.endAsync(true));
    const ack = async (upTo: number) => c.publishAsync(`stele/v1/${DEVICE}/acks`, await confirmation(DEVICE, upTo, (await env.outbox.digestAt(upTo))!), { qos: 1 });
    for (const upTo of [5, 5, 5, 3, 8, 5, 8, 1, 10, 10, 7]) await ack(upTo);
    await waitFor(() => env.outbox.ackedUpTo() === 10, 10_000, 'mark at 10');
    await sleep(100); // the last (stale) acks are handled too
    expect(env.outbox.ackedUpTo()).toBe(10);
    expect(marks).toEqual([5, 8, 10]);
    expect(p.status()).toMatchObject({ acked: 10, resends: 0, inFlight: 0 });
    expect(fake.received).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]); // nothing sent twice
    expect(p.status().problems).toEqual({});
  });

  it('a confirmation beyond the head is counted and ignored, never trusted', async () => {
    for (let i = 1; i <= 3; i++) await env.outbox.take(acquired(i), signer, DEVICE);
    const p = new Publisher({ mqttUrl: env.broker.url, deviceId: DEVICE, outbox: env.outbox, ingestKey: TEST_INGEST.publicKey, reconnectPeriodMs: 100, resendAfterMs: 60_000 });
    cleanups.push(() => p.stop());
    await p.start();
    await waitFor(() => p.connected, 10_000, 'connected');
    const c = await mqtt.connectAsync(env.broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => c.endAsync(true));
    await c.publishAsync(`stele/v1/${DEVICE}/acks`, await confirmation(DEVICE, 99, new Uint8Array(32)), { qos: 1 });
    await waitFor(() => (p.status().problems.PUBLISH_ACK_BEYOND_HEAD ?? 0) === 1, 10_000, 'counted');
    expect(p.status().ignored).toEqual({ PUBLISH_CONFIRMATION_HEAD: 1 });
    expect(env.outbox.ackedUpTo()).toBe(0);
  });

  it('the retention prunes only what ingest confirmed, while the publisher goes on', async () => {
    const fake = await startFakeIngest(env.broker.url, DEVICE);
    cleanups.push(() => fake.stop());
    const p = new Publisher({ mqttUrl: env.broker.url, deviceId: DEVICE, outbox: env.outbox, ingestKey: TEST_INGEST.publicKey, reconnectPeriodMs: 100 });
    cleanups.push(() => p.stop());
    const r = new Retention({ outbox: env.outbox, stateFile: join(env.dir, 'retention.json'), keepForMs: 0, keepReadings: 10, intervalMs: 3_600_000, batchSize: 16 });
    cleanups.push(() => r.stop());
    await r.start();
    await p.start();
    for (let i = 1; i <= 200; i++) {
      await env.outbox.take(acquired(i), signer, DEVICE);
      p.notify();
      if (i % 25 === 0) await r.runOnce();
    }
    await waitFor(() => env.outbox.ackedUpTo() === 200, 15_000, 'all acked');
    await r.runOnce();
    expect((await env.outbox.pendingFrom(0, 1000)).map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 191 + i));
    expect([...new Set(fake.received)].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(p.status().stalled).toBeUndefined();
  });
});
