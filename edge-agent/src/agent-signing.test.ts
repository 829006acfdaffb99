/** The agent's signing stage with a slow key (issue #3 item 6, FORMAT.md §3.1). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { equalBytes, decodeReading, GENESIS_PREV, readingDigest } from '@stele/core';
import { checkStatementAgainstReading, parseStatement, verifyStatementSignature } from '@stele/core/cose';
import type { Signer } from '@stele/core';
import { createSoftwareKey, type SoftwareSigner } from '@stele/device';
import { GatewayAgent } from './agent.ts';
import { Outbox, type Acquired } from './outbox.ts';
import { Publisher } from './publisher.ts';
import { acquired, startBroker, startFakeIngest, TEST_INGEST, waitFor } from './test-helpers.ts';

const DEVICE = 'gw-slow-1';
let dir: string;
let key: SoftwareSigner;
let outbox: Outbox;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const keyDir = await mkdtemp(join(tmpdir(), 'stele-slow-key-'));
  key = await createSoftwareKey(join(keyDir, 'k.pem'));
  await rm(keyDir, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-slow-'));
  outbox = await Outbox.open(join(dir, 'outbox'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await outbox.close();
  await rm(dir, { recursive: true, force: true });
});

/** `inner` slowed to `delayMs` per signature, one at a time (like a token), failing while `failing()`. */
function slowKey(inner: Signer, delayMs: number, failing: () => boolean = () => false): Signer & { calls: number } {
  let tail: Promise<unknown> = Promise.resolve();
  const out = {
    algorithm: inner.algorithm,
    keyId: inner.keyId,
    publicKey: inner.publicKey,
    backend: inner.backend,
    calls: 0,
    sign: (m: Uint8Array) => {
      const run = tail.then(async () => {
        await new Promise((r) => setTimeout(r, delayMs));
        if (failing()) throw Object.assign(new Error('token not present'), { code: 'PKCS11_TOKEN_GONE' });
        out.calls++;
        return inner.sign(m);
      });
      tail = run.catch(() => undefined);
      return run;
    },
  };
  return out;
}

/** `n` items as fast as the agent takes them. */
async function* burst(n: number): AsyncIterable<Acquired> {
  for (let i = 1; i <= n; i++) {
    await new Promise((r) => setImmediate(r));
    yield acquired(i);
  }
}

async function expectAllVerify(n: number): Promise<void> {
  const entries = await outbox.pendingFrom(1, n + 1);
  expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  let prev = GENESIS_PREV;
  for (const e of entries) {
    expect(equalBytes(decodeReading(e.reading).prev, prev)).toBe(true);
    const st = parseStatement(e.statement);
    expect(checkStatementAgainstReading(st, e.reading)).toBe('ok');
    expect(await verifyStatementSignature(st, key.publicKey)).toBe(true);
    prev = readingDigest(e.reading);
  }
}

describe('GatewayAgent with a slow key', () => {
  it('takes a burst without waiting for the key, signs it in device-level batches, and publishes all of it', async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const fake = await startFakeIngest(broker.url, DEVICE);
    cleanups.push(() => fake.stop());
    const publisher = new Publisher({ mqttUrl: broker.url, deviceId: DEVICE, outbox, ingestKey: TEST_INGEST.publicKey });
    const signer = slowKey(key, 20);
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox, publisher, maxSignBatch: 16 });
    cleanups.push(() => agent.stop());
    await publisher.start();
    agent.addSource('burst', burst(200));
    await waitFor(() => outbox.ackedUpTo() === 200, 30_000, 'all 200 acked');
    const s = agent.status();
    expect(s).toMatchObject({ taken: 200, failed: 0, seq: 200 });
    expect(s.signing.signed).toBe(200);
    expect(s.signing.unsigned).toBe(0);
    // far fewer signatures than readings, none covering more than maxSignBatch
    expect(s.signing.signatures).toBe(signer.calls);
    expect(s.signing.signatures).toBeLessThan(200);
    expect(Math.max(...Object.keys(s.signing.batchSizes).map(Number))).toBeLessThanOrEqual(16);
    expect(s.signing.maxUnsigned).toBeGreaterThan(1);
    expect(s.signing.keyRatePerSec).toBeGreaterThan(0);
    await expectAllVerify(200);
  });

  it('signs each reading alone while the key keeps up (maxSignBatch 1 forces it)', async () => {
    const agent = new GatewayAgent({ deviceId: DEVICE, signer: key, outbox, maxSignBatch: 1 });
    cleanups.push(() => agent.stop());
    agent.addSource('burst', burst(30));
    await waitFor(() => agent.status().signing.signed === 30, 10_000, 'all signed');
    expect(agent.status().signing.batchSizes).toEqual({ '1': 30 });
    for (const e of await outbox.pendingFrom(1, 40)) expect(parseStatement(e.statement).batch).toBeUndefined();
  });

  it('keeps taking while the key is gone, reports it, and signs everything once it is back', async () => {
    let gone = true;
    const agent = new GatewayAgent({ deviceId: DEVICE, signer: slowKey(key, 1, () => gone), outbox });
    cleanups.push(() => agent.stop());
    agent.addSource('burst', burst(40));
    await waitFor(() => agent.status().taken === 40 && agent.status().signing.lastError !== undefined, 10_000, 'taken while the key fails');
    expect(agent.status().signing.lastError).toMatchObject({ code: 'PKCS11_TOKEN_GONE' });
    expect(outbox.signedUpTo()).toBe(0);
    gone = false;
    await waitFor(() => agent.status().signing.unsigned === 0, 20_000, 'signed after the key came back');
    await expectAllVerify(40);
  });

  it('signs readings left unsigned by an earlier run when it starts', async () => {
    for (let i = 1; i <= 5; i++) await outbox.takeUnsigned(acquired(i), key, DEVICE);
    await outbox.close();
    outbox = await Outbox.open(join(dir, 'outbox'));
    expect(outbox.unsignedCount()).toBe(5);
    const agent = new GatewayAgent({ deviceId: DEVICE, signer: key, outbox });
    cleanups.push(() => agent.stop());
    await waitFor(() => outbox.unsignedCount() === 0, 10_000, 'signed at start');
    await expectAllVerify(5);
  });

  it('drains for a bounded time: readings left unsigned stay durable for the next start', async () => {
    for (let i = 1; i <= 100; i++) await outbox.takeUnsigned(acquired(i), key, DEVICE);
    await outbox.close(); // a restart: the readings wait for the agent's (slow) key
    outbox = await Outbox.open(join(dir, 'outbox'));
    const agent = new GatewayAgent({ deviceId: DEVICE, signer: slowKey(key, 50), outbox, maxSignBatch: 1 });
    cleanups.push(() => agent.stop());
    await agent.drainSigning(200);
    expect(outbox.unsignedCount()).toBeGreaterThan(0);
    expect(outbox.head().seq).toBe(100);
  });

  it('signs what was taken before stop() returns', async () => {
    const agent = new GatewayAgent({ deviceId: DEVICE, signer: slowKey(key, 10), outbox });
    agent.addSource('burst', burst(50));
    await waitFor(() => agent.status().taken >= 20, 10_000, 'some taken');
    await agent.stop();
    expect(outbox.unsignedCount()).toBe(0);
    await expectAllVerify(outbox.head().seq);
  });
});
