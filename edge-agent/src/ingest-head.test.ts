/**
 * The one comparison of the gateway's chain with ingest's head (issue #9): from ingest's HTTP API before
 * publishing, or from a signed confirmation (FORMAT.md §11.1). A diverging chain stops publishing.
 */
import mqtt from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SoftwareSigner } from '@stele/device';
import { compareWithIngest } from './ingest-head.ts';
import { Publisher } from './publisher.ts';
import { acquired, confirmation, createTestKey, TEST_INGEST, useBrokerOutbox, waitFor } from './test-helpers.ts';

const DEVICE = 'gw-head-1';
const env = useBrokerOutbox('stele-head-');
let signer: SoftwareSigner;

beforeAll(async () => {
  signer = await createTestKey('stele-head-key-');
});

describe('compareWithIngest', () => {
  it('accepts a head this outbox holds, and ingest holding nothing', async () => {
    for (let i = 1; i <= 5; i++) await env.outbox.take(acquired(i), signer, DEVICE);
    expect(await compareWithIngest(env.outbox, { seq: 0, digest: undefined, source: 'http' })).toEqual({ ok: true });
    expect(await compareWithIngest(env.outbox, { seq: 3, digest: (await env.outbox.digestAt(3))!, source: 'http' })).toEqual({ ok: true });
    expect(await compareWithIngest(env.outbox, { seq: 5, digest: undefined, source: 'http' })).toEqual({ ok: true });
  });

  it('refuses a head above this outbox (a lost or replaced outbox) and another digest at the same seq', async () => {
    for (let i = 1; i <= 5; i++) await env.outbox.take(acquired(i), signer, DEVICE);
    const ahead = await compareWithIngest(env.outbox, { seq: 9, digest: undefined, source: 'http' });
    expect(ahead).toMatchObject({ ok: false, code: 'PUBLISH_CHAIN_DIVERGED' });
    expect(!ahead.ok && ahead.message).toContain('stele gateway reinstall');
    const other = await compareWithIngest(env.outbox, { seq: 4, digest: (await env.outbox.digestAt(2))!, source: 'http' });
    expect(other).toMatchObject({ ok: false, code: 'PUBLISH_CHAIN_DIVERGED' });
  });

  it('a signed confirmation of a head this outbox does not hold stops publishing (PUBLISH_CHAIN_DIVERGED)', async () => {
    for (let i = 1; i <= 3; i++) await env.outbox.take(acquired(i), signer, DEVICE);
    const p = new Publisher({ mqttUrl: env.broker.url, deviceId: DEVICE, outbox: env.outbox, reconnectPeriodMs: 100, resendAfterMs: 60_000, ingestKey: TEST_INGEST.publicKey });
    env.cleanups.push(() => p.stop());
    await p.start();
    await waitFor(() => p.connected, 10_000, 'connected');
    const c = await mqtt.connectAsync(env.broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    env.cleanups.push(() => c.endAsync(true));
    // ingest says it holds seq 40 of this device: this outbox (head 3) is not that chain
    await c.publishAsync(`stele/v1/${DEVICE}/acks`, Buffer.from(await confirmation(DEVICE, 40, new Uint8Array(32).fill(7))), { qos: 1 });
    await waitFor(() => p.status().stalled !== undefined, 10_000, 'stalled');
    expect(p.status().stalled).toBe('PUBLISH_CHAIN_DIVERGED');
    expect(p.status().stalledDetail).toContain('seq 40');
    expect(env.outbox.ackedUpTo()).toBe(0);
  });
});
