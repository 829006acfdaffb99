import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeReading } from '@stele/core';
import { createSoftwareKey, type SoftwareSigner } from '@stele/device';
import { GatewayAgent } from './agent.ts';
import { Outbox, type Acquired } from './outbox.ts';
import { Publisher } from './publisher.ts';
import { acquired, startBroker, startFakeIngest, TEST_INGEST, waitFor, type TestBroker } from './test-helpers.ts';

const DEVICE = 'gw-agent-1';
let dir: string;
let signer: SoftwareSigner;
let outbox: Outbox;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const keyDir = await mkdtemp(join(tmpdir(), 'stele-agent-key-'));
  signer = await createSoftwareKey(join(keyDir, 'k.pem'));
  await rm(keyDir, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-agent-'));
  outbox = await Outbox.open(join(dir, 'outbox'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await outbox.close();
  await rm(dir, { recursive: true, force: true });
});

async function* items(n: number, sensor: string, offset = 0): AsyncIterable<Acquired> {
  for (let i = 1; i <= n; i++) {
    await new Promise((r) => setImmediate(r));
    yield acquired(offset + i, sensor);
  }
}

/** Never yields until it is asked to return. */
function blocked(): AsyncIterable<Acquired> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => new Promise<IteratorResult<Acquired>>(() => undefined),
      return: async () => ({ done: true, value: undefined }),
    }),
  };
}

describe('GatewayAgent', () => {
  it('takes every item of every source, publishes them, and reports status', async () => {
    const broker: TestBroker = await startBroker();
    cleanups.push(() => broker.close());
    const fake = await startFakeIngest(broker.url, DEVICE);
    cleanups.push(() => fake.stop());
    const publisher = new Publisher({ mqttUrl: broker.url, deviceId: DEVICE, outbox, ingestKey: TEST_INGEST.publicKey });
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox, publisher });
    cleanups.push(() => agent.stop());
    await publisher.start();
    agent.addSource('cems', items(20, 'cems-1'));
    agent.addSource('th', items(15, 'th-1', 100));
    await waitFor(() => agent.status().taken === 35 && outbox.ackedUpTo() === 35, 15_000, 'all taken and acked');
    const s = agent.status();
    expect(s).toMatchObject({ deviceId: DEVICE, seq: 35, acked: 35, pending: 0, taken: 35, failed: 0 });
    expect(s.sensors['cems-1']).toMatchObject({ taken: 20, failed: 0, lastTime: acquired(20).time });
    expect(s.sensors['th-1']).toMatchObject({ taken: 15, lastTime: acquired(115).time });
    expect(s.sources).toEqual({ cems: { state: 'ended', taken: 20 }, th: { state: 'ended', taken: 15 } });
    expect(s.signingRatePerSec).toBeGreaterThan(0);
    expect(s.publisher?.connected).toBe(true);
    expect([...new Set(fake.received)].sort((a, b) => a - b)).toEqual(Array.from({ length: 35 }, (_, i) => i + 1));
    // both sensors interleave in one chain of one device
    const entries = await outbox.pendingFrom(1, 100);
    expect(new Set(entries.map((e) => decodeReading(e.reading).sensor))).toEqual(new Set(['cems-1', 'th-1']));
  });

  it('counts an item that cannot be taken and goes on with the source', async () => {
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox });
    cleanups.push(() => agent.stop());
    async function* withBadItem(): AsyncIterable<Acquired> {
      yield acquired(1, 's');
      yield { ...acquired(2, 's'), raw: [new Uint8Array(3)] }; // a raw digest must be 32 bytes
      yield acquired(3, 's');
    }
    agent.addSource('s', withBadItem());
    await waitFor(() => agent.status().sources['s']?.state === 'ended', 10_000, 'source ended');
    const s = agent.status();
    expect(s).toMatchObject({ seq: 2, taken: 2, failed: 1 });
    expect(s.sensors['s']).toMatchObject({ taken: 2, failed: 1 });
    expect(s.lastError).toMatchObject({ sensor: 's', code: 'TypeError' });
  });

  it('marks a source that throws as failed', async () => {
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox });
    cleanups.push(() => agent.stop());
    async function* broken(): AsyncIterable<Acquired> {
      yield acquired(1, 's');
      throw Object.assign(new Error('port gone'), { code: 'SERIAL_DISCONNECTED' });
    }
    agent.addSource('s', broken());
    await waitFor(() => agent.status().sources['s']?.state === 'failed', 10_000, 'source failed');
    expect(agent.status().sources['s']).toEqual({ state: 'failed', taken: 1, error: 'port gone' });
    expect(() => agent.addSource('s', items(1, 's'))).toThrow(RangeError);
  });

  it('stops even when a source is blocked, and takes nothing afterwards', async () => {
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox });
    agent.addSource('blocked', blocked());
    agent.addSource('ok', items(3, 's'));
    await waitFor(() => agent.status().taken === 3, 10_000, 'three taken');
    await agent.stop();
    await agent.stop();
    expect(agent.status().sources['blocked']?.state).toBe('stopped');
    expect(() => agent.addSource('late', items(1, 's'))).toThrow();
    expect(outbox.head().seq).toBe(3);
  });
});
