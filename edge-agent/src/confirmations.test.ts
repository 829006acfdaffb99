/**
 * The gateway acts only on confirmations it can authenticate (FORMAT.md §11.1, issue #8): signed by the pinned
 * ingest key, naming this device and a head digest this outbox holds. Everything else is ignored and counted,
 * and the retention never prunes above a verified confirmation.
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeCbor } from '@stele/core';
import { createTestSigner } from '@stele/core/testing';
import type { SoftwareSigner } from '@stele/device';
import { Publisher, type PublisherOptions } from './publisher.ts';
import { Retention } from './retention/retention.ts';
import { acquired, confirmation, createTestKey, sleep, TEST_INGEST, useBrokerOutbox, waitFor } from './test-helpers.ts';

const DEVICE = 'gw-conf-1';
const env = useBrokerOutbox('stele-conf-');
const { cleanups } = env;
let signer: SoftwareSigner;

beforeAll(async () => {
  signer = await createTestKey('stele-conf-key-');
});

async function setup(n: number, options: Partial<PublisherOptions> = {}): Promise<{ p: Publisher; c: MqttClient; send: (b: Uint8Array) => Promise<void> }> {
  for (let i = 1; i <= n; i++) await env.outbox.take(acquired(i), signer, DEVICE);
  const p = new Publisher({ mqttUrl: env.broker.url, deviceId: DEVICE, outbox: env.outbox, reconnectPeriodMs: 100, resendAfterMs: 60_000, ingestKey: TEST_INGEST.publicKey, ...options });
  cleanups.push(() => p.stop());
  await p.start();
  await waitFor(() => p.connected, 10_000, 'connected');
  const c = await mqtt.connectAsync(env.broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
  cleanups.push(() => c.endAsync(true));
  return { p, c, send: (b) => c.publishAsync(`stele/v1/${DEVICE}/acks`, Buffer.from(b), { qos: 1 }).then(() => undefined) };
}

const ignoredTotal = (p: Publisher) => Object.values(p.status().ignored).reduce((a, b) => a + b, 0);

describe('confirmations at the gateway', () => {
  it('a forged unsigned {upTo: 2^53-1}, another key, another device or a head it does not have change nothing', async () => {
    const { p, send } = await setup(5);
    const head3 = (await env.outbox.digestAt(3))!;
    await send(encodeCbor({ upTo: 2 ** 53 - 1 }));
    await send(await confirmation(DEVICE, 3, head3, { signer: createTestSigner() }));
    await send(await confirmation('gw-other', 3, head3));
    await send(await confirmation(DEVICE, 3, (await env.outbox.digestAt(2))!));
    await send(await confirmation(DEVICE, 2 ** 53 - 1, head3));
    await waitFor(() => ignoredTotal(p) === 5, 10_000, 'five ignored');
    expect(p.status().ignored).toEqual({
      CONFIRMATION_FORMAT_ERROR: 1,
      CONFIRMATION_KEY_ERROR: 1,
      CONFIRMATION_DEVICE_ERROR: 1,
      PUBLISH_CONFIRMATION_HEAD: 2,
    });
    expect(env.outbox.ackedUpTo()).toBe(0);
    // the genuine one still works afterwards
    await send(await confirmation(DEVICE, 3, head3));
    await waitFor(() => env.outbox.ackedUpTo() === 3, 10_000, 'acked 3');
  });

  it('without a pinned ingest key acts on nothing (PUBLISH_INGEST_KEY_UNPINNED)', async () => {
    const { p, send } = await setup(3, { ingestKey: undefined } as never);
    await send(await confirmation(DEVICE, 3, (await env.outbox.digestAt(3))!));
    await waitFor(() => p.status().ignored.PUBLISH_INGEST_KEY_UNPINNED === 1, 10_000, 'counted');
    expect(env.outbox.ackedUpTo()).toBe(0);
  });

  it('an anchored confirmation records the anchored mark and implies stored', async () => {
    const { p, send } = await setup(4);
    await send(await confirmation(DEVICE, 2, (await env.outbox.digestAt(2))!, { type: 'anchored' }));
    await waitFor(() => p.status().anchoredUpTo === 2, 10_000, 'anchored 2');
    expect(env.outbox.ackedUpTo()).toBe(2);
  });

  it('retention never prunes above the verified mark, whatever was forged', async () => {
    const { p, send } = await setup(20);
    const r = new Retention({ outbox: env.outbox, stateFile: join(env.dir, 'retention.json'), keepForMs: 0, keepReadings: 0, intervalMs: 3_600_000 });
    cleanups.push(() => r.stop());
    await r.start();
    await send(await confirmation(DEVICE, 5, (await env.outbox.digestAt(5))!));
    await send(encodeCbor({ upTo: 20 }));
    await send(await confirmation(DEVICE, 20, (await env.outbox.digestAt(20))!, { signer: createTestSigner() }));
    await waitFor(() => ignoredTotal(p) === 2, 10_000, 'two ignored');
    await sleep(50);
    await r.runOnce();
    expect((await env.outbox.pendingFrom(0, 100)).map((e) => e.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 6));
  });

  it('logs an ignored confirmation flood at most once per code per 10 s', async () => {
    const lines: unknown[] = [];
    const { p, send } = await setup(1, { log: (level: string, msg: string, fields?: Record<string, unknown>) => void (msg === 'confirmation ignored' && lines.push(fields)) } as never);
    for (let i = 0; i < 50; i++) await send(encodeCbor({ upTo: i + 1 }));
    await waitFor(() => ignoredTotal(p) === 50, 10_000, 'fifty ignored');
    expect(lines).toHaveLength(1);
  });
});
